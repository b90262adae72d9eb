"""The OpenAPI 3.1 document of ollamux's own HTTP surface, served at
``GET /ollamux/openapi.json`` (an admin endpoint when keys are configured).

Bodies of the proxied Ollama and OpenAI endpoints are described loosely (a JSON object
with a ``model``): their full schemas are Ollama's and OpenAI's own.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import __version__

_OBJECT = {"type": "object", "additionalProperties": True}
_MODEL_BODY = {
    "type": "object",
    "required": ["model"],
    "properties": {"model": {"type": "string"}, "stream": {"type": "boolean"}},
    "additionalProperties": True,
}
_ERRORS = {
    "400": "bad request (invalid JSON, invalid id)",
    "401": "missing or invalid API key",
    "403": "the key may not use this endpoint or model",
    "404": "not found",
    "413": "request body too large",
    "429": "the key is over its rate or concurrency limit",
}

# (method, path, summary, request body schema or None, admin only)
_ENDPOINTS: tuple[tuple[str, str, str, dict[str, Any] | None, bool], ...] = (
    ("post", "/api/chat", "Ollama chat (streams NDJSON by default)", _MODEL_BODY, False),
    ("post", "/api/generate", "Ollama generate", _MODEL_BODY, False),
    ("post", "/api/embed", "Ollama embeddings", _MODEL_BODY, False),
    ("post", "/api/embeddings", "Ollama embeddings (legacy)", _MODEL_BODY, False),
    ("post", "/api/show", "Ollama model details", _MODEL_BODY, False),
    ("get", "/api/tags", "every model of every healthy backend", None, False),
    ("get", "/api/ps", "every loaded model", None, False),
    ("get", "/api/version", "the Ollama version", None, False),
    ("post", "/v1/chat/completions", "OpenAI chat completions", _MODEL_BODY, False),
    ("post", "/v1/completions", "OpenAI completions", _MODEL_BODY, False),
    ("post", "/v1/embeddings", "OpenAI embeddings", _MODEL_BODY, False),
    ("get", "/v1/models", "every model, OpenAI form", None, False),
    ("get", "/v1/models/{model}", "one model, OpenAI form", None, False),
    ("get", "/tasks/status", "recent tasks, newest first", None, False),
    ("get", "/tasks/status/{task_id}", "one task's status document", None, False),
    ("post", "/api/v1/prompt", "submit a prompt as an async job", _OBJECT, False),
    ("get", "/api/v1/prompt/{job_id}/status", "an async job's status", None, False),
    ("get", "/api/v1/prompt/{job_id}/result", "an async job's result", None, False),
    ("get", "/api/v1/prompts", "async jobs, paged", None, False),
    ("post", "/jobs", "submit any chat/generate/embeddings request as a job", _OBJECT, False),
    ("get", "/jobs", "jobs, paged", None, False),
    ("get", "/jobs/{job_id}", "one job", None, False),
    ("delete", "/jobs/{job_id}", "cancel a job", None, False),
    ("get", "/jobs/{job_id}/result", "a job's result", None, False),
    ("get", "/ollamux/health", "liveness (never needs a key)", None, False),
    ("get", "/ollamux/backends", "the backend table", None, True),
    ("get", "/ollamux/openapi.json", "this document", None, True),
    ("get", "/__proxy/health", "load-balancer health (legacy)", None, True),
    ("get", "/__proxy/backends", "load-balancer state (legacy)", None, True),
    ("get", "/metrics", "Prometheus metrics", None, True),
)


def _operation(path: str, summary: str, body: dict[str, Any] | None, admin: bool) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary + (" (admin key)" if admin else ""),
        "responses": {"200": {"description": "success"}}
        | {code: {"description": text} for code, text in _ERRORS.items()},
    }
    params = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ]
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if path == "/ollamux/health":
        op["security"] = []
    return op


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, admin in _ENDPOINTS:
        paths.setdefault(path, {})[method] = _operation(path, summary, body, admin)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ollamux", "version": __version__},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            }
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": paths,
    }


async def serve(request: web.Request) -> web.Response:
    return web.json_response(document())
