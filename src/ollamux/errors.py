"""Errors in the dialect of the endpoint that was called.

Ollama paths answer ``{"error": "..."}``; OpenAI paths answer
``{"error": {"message", "type", "param", "code"}}``; Anthropic paths (``/v1/messages*``)
answer ``{"type": "error", "error": {"type", "message"}}``. The status code is kept.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .dialect import Dialect

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "api_error",
    503: "service_unavailable",
    504: "timeout_error",
}

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class GatewayError(Exception):
    """Raised anywhere in the request path; rendered by the core in the endpoint's dialect."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        error_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})
        self.error_type = error_type

    def payload(self, dialect: Dialect) -> dict[str, Any]:
        return error_payload(
            dialect,
            self.message,
            self.status,
            code=self.code,
            param=self.param,
            error_type=self.error_type,
        )

    def response(self, dialect: Dialect) -> web.Response:
        return web.Response(
            status=self.status,
            body=json.dumps(self.payload(dialect)).encode(),
            content_type="application/json",
            headers=self.headers,
        )


def error_payload(
    dialect: Dialect,
    message: str,
    status: int,
    *,
    code: str | None = None,
    param: str | None = None,
    error_type: str | None = None,
) -> dict[str, Any]:
    if dialect is Dialect.OPENAI:
        etype = (
            error_type
            or _OPENAI_TYPES.get(status)
            or ("invalid_request_error" if status < 500 else "api_error")
        )
        return {"error": {"message": message, "type": etype, "param": param, "code": code}}
    if dialect is Dialect.ANTHROPIC:
        atype = _ANTHROPIC_TYPES.get(status) or (
            "invalid_request_error" if status < 500 else "api_error"
        )
        return {"type": "error", "error": {"type": atype, "message": message}}
    return {"error": message}


def stream_error_bytes(dialect: Dialect, message: str, status: int = 502) -> bytes:
    """The last bytes of a stream that broke: an SSE error event or an NDJSON error line."""
    body = json.dumps(error_payload(dialect, message, status))
    if dialect is Dialect.ANTHROPIC:
        return f"event: error\ndata: {body}\n\n".encode()
    if dialect is Dialect.OPENAI:
        return f"data: {body}\n\n".encode()
    return f"{body}\n".encode()


def upstream_error_message(body: bytes) -> str:
    """Best-effort extraction of the human message from an upstream error body."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "upstream error"
    if isinstance(data, dict):
        err = data.get("error", data.get("detail", data.get("message")))
        if isinstance(err, dict):
            err = err.get("message", err)
        if err is not None:
            return str(err)[:500]
    return text[:500]
