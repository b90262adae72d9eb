"""The access log: one line per request, as text or as JSON (``server.log_format``).

It names the caller by key name (never the key), and says which model and backend served
the request, how it ended, how long it took, the time to first chunk and the token counts.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...exchange import Exchange

log = logging.getLogger("ollamux.access")


def access_fields(exchange: Exchange, usage: dict[str, int]) -> dict[str, Any]:
    """The fields of one access-log line, in a stable order."""
    ttft = None
    if exchange.first_chunk_at is not None:
        ttft = int((exchange.first_chunk_at - exchange.started_at) * 1000)
    return {
        "remote": exchange.request.remote or "-",
        "method": exchange.method,
        "path": exchange.path,
        "status": exchange.status,
        "outcome": str(exchange.outcome),
        "task_id": exchange.task_id or None,
        "key": exchange.principal.name,
        "model": exchange.model,
        "backend": exchange.backend.name if exchange.backend is not None else None,
        "attempts": exchange.attempts,
        "duration_ms": exchange.elapsed_ms(),
        "ttft_ms": ttft,
        "tokens_in": usage.get("prompt_tokens"),
        "tokens_out": usage.get("completion_tokens"),
        "bytes_out": exchange.bytes_out,
        "error": exchange.error or None,
    }


def text_line(fields: dict[str, Any]) -> str:
    """``127.0.0.1 "POST /api/chat" 200 task=... key=alice model=... duration_ms=...``"""
    head = f'{fields["remote"]} "{fields["method"]} {fields["path"]}" {fields["status"]}'
    rest = []
    for name, value in fields.items():
        if name in ("remote", "method", "path", "status") or value is None:
            continue
        text = str(value)
        if " " in text or '"' in text or not text:
            text = '"' + text.replace('"', '\\"') + '"'
        rest.append(f"{name}={text}")
    return " ".join([head, *rest])


def log_access(exchange: Exchange, usage: dict[str, int], json_format: bool) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    fields = access_fields(exchange, usage)
    if json_format:
        message = f"{fields['method']} {fields['path']} {fields['status']}"
        log.info(message, extra={"fields": {"event": "access", **fields}})
    else:
        log.info(text_line(fields))
