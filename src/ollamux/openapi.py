"""The OpenAPI 3.1 document of ollamux's own HTTP surface, served at
``GET /ollamux/openapi.json`` (an admin endpoint when keys are configured). Plugin routes
contribute their own operations when they register (``gateway.routes.add(openapi=...)``).

Bodies of the proxied Ollama and OpenAI endpoints are described loosely (a JSON object
with a ``model``): their full schemas are Ollama's and OpenAI's own.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    ("post", "/v1/responses", "OpenAI Responses (stateless)", _MODEL_BODY, False),
    ("post", "/v1/messages", "Anthropic Messages", _MODEL_BODY, False),
    (
        "post",
        "/v1/messages/count_tokens",
        "Anthropic token count (an estimate)",
        _MODEL_BODY,
        False,
    ),
    ("get", "/v1/models", "every model, OpenAI form", None, False),
    ("get", "/v1/models/{model}", "one model, OpenAI form", None, False),
    ("get", "/ollamux/openapi.json", "this document", None, True),
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


def document(
    fragments: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """The proxied API, plus each plugin route's own operation (``fragments``: path ->
    method -> operation, as given to ``gateway.routes.add(..., openapi=...)``)."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, admin in _ENDPOINTS:
        paths.setdefault(path, {})[method] = _operation(path, summary, body, admin)
    for path, operations in (fragments or {}).items():
        for method, op in operations.items():
            full = _operation(path, str(op.get("summary", "")), None, False)
            paths.setdefault(path, {})[method] = {**full, **op}
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
    from .pipeline import GATEWAY

    return web.json_response(document(request.app[GATEWAY].routes.openapi))
