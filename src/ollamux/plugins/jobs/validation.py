"""Turning client bodies into jobs: what the two API forms accept (everything else is a 400)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...endpoints import ENDPOINTS, Kind
from ...errors import GatewayError
from ...pipeline import check_field_names

# The endpoints a job may call, and the field each needs besides ``model``.
JOB_PATHS: dict[str, str] = {
    e.path: e.input_field for e in ENDPOINTS.values() if e.kind is Kind.INFERENCE and e.input_field
}

PROMPT_PATH = "/api/generate"


@dataclass
class Submission:
    path: str
    body: dict[str, Any]
    priority: int | None
    kind: str


def _priority(data: dict[str, Any]) -> int | None:
    value = data.get("priority")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise GatewayError(400, "priority must be an integer", param="priority")
    return value


def _model(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise GatewayError(400, "body.model is required (a model name)", param="model")
    return model


def parse_job(data: dict[str, Any]) -> Submission:
    """The general form: ``{"path", "body", "priority"?}``."""
    path = data.get("path")
    if not isinstance(path, str) or path not in JOB_PATHS:
        raise GatewayError(
            400, f"path must be one of {', '.join(JOB_PATHS)} (got {path!r})", param="path"
        )
    body = data.get("body")
    if not isinstance(body, dict):
        raise GatewayError(400, "body must be a JSON object (the endpoint's request)")
    check_field_names(body)
    _model(body)
    needed = JOB_PATHS[path]
    if body.get(needed) in (None, "", []):
        raise GatewayError(400, f"body.{needed} is required for {path}", param=needed)
    return Submission(path, body, _priority(data), "job")


def parse_prompt(data: dict[str, Any], default_model: str) -> Submission:
    """The simple form: ``{"prompt", "model"?, "priority"?}`` → ``/api/generate``."""
    check_field_names(data)
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise GatewayError(400, "prompt is required (a non-empty string)", param="prompt")
    model = data.get("model") or default_model
    if not isinstance(model, str):
        raise GatewayError(400, "model must be a string", param="model")
    return Submission(PROMPT_PATH, {"model": model, "prompt": prompt}, _priority(data), "prompt")


def upstream_body(body: dict[str, Any]) -> dict[str, Any]:
    """The body a worker sends: the client's, asking for one complete (non-streamed) answer."""
    out = dict(body)
    out["stream"] = False
    out.pop("stream_options", None)  # only valid with stream=true
    return out


def result_text(result: Any) -> Any:
    """The simple form's ``result``: the generated text when there is one, else the answer."""
    if not isinstance(result, dict):
        return result
    if isinstance(result.get("response"), str):
        return result["response"]
    message = result.get("message")
    if isinstance(message, dict) and isinstance(message.get("content"), str):
        return message["content"]
    choices = result.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        first = choices[0]
        if isinstance(first.get("message"), dict):
            return first["message"].get("content")
        if isinstance(first.get("text"), str):
            return first["text"]
    return result


def page_args(query: Any, default_size: int) -> tuple[int, int]:
    """``page`` (from 1) and ``page_size`` (1..100) from a query string."""
    try:
        page = int(query.get("page", 1))
        size = int(query.get("page_size", default_size))
    except ValueError as exc:
        raise GatewayError(400, "page and page_size must be integers") from exc
    if page < 1 or not 1 <= size <= 100:
        raise GatewayError(400, "page must be >= 1 and page_size between 1 and 100")
    return page, size
