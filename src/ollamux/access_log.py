"""The access log: one line for every HTTP response, as text or as JSON
(``server.log_format``), written by the outermost middleware, so redirects, refusals,
timeouts and plugin routes have their line as proxied requests do
(``server.access_log: false`` turns it off).

It names the caller (never the key), and for proxied requests says which model and backend
served the request, how it ended, how long it took, the time to first chunk and the token
counts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .exchange import PRINCIPAL_KEY, Exchange
from .logging_setup import sole_handler

if TYPE_CHECKING:
    from .gateway import Gateway

log = logging.getLogger("ollamux.access")

# The exchange of a proxied request, for its access line.
EXCHANGE_KEY: web.RequestKey[Exchange] = web.RequestKey("ollamux_exchange", Exchange)


def access_middleware(gateway: Gateway) -> Middleware:
    """Reads ``server.access_log`` and ``server.log_format`` per request: a reload that
    changes them takes effect at once."""

    @web.middleware
    async def access(request: web.Request, handler: Handler) -> web.StreamResponse:
        server = gateway.config.server
        if not server.access_log or not log.isEnabledFor(logging.INFO):
            try:
                return await handler(request)
            finally:
                request.pop(EXCHANGE_KEY, None)  # see below
        started = time.monotonic()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's code for it)
            raise
        finally:
            # The request and its exchange refer to each other: without this, each request
            # left ~30 objects (request, exchange, response, ...) for the cyclic garbage
            # collector, which then cost ~30 us per request. Nothing but the line reads it.
            exchange = request.pop(EXCHANGE_KEY, None)
            _log(request, exchange, status, started, server.log_format == "json")

    return access


def _log(
    request: web.Request,
    exchange: Exchange | None,
    status: int,
    started: float,
    json_format: bool,
) -> None:
    """Write the access line of ``request``, of ``exchange`` when it was proxied."""
    if json_format:
        fields = (
            exchange_fields(exchange) if exchange is not None else _fields(request, status, started)
        )
        _write(fields, True)
    elif exchange is not None:
        _emit(exchange_line(exchange), None)
    else:
        _emit(text_line(_fields(request, status, started)), None)


def _fields(request: web.Request, status: int, started: float) -> dict[str, Any]:
    principal = request.get(PRINCIPAL_KEY)
    return {
        "remote": request.remote or "-",
        "method": request.method,
        "path": request.path,
        "status": status,
        "key": principal.name if principal is not None else None,
        "duration_ms": int((time.monotonic() - started) * 1000),
    }


def exchange_fields(exchange: Exchange) -> dict[str, Any]:
    """The fields of one proxied request's access-log line, in a stable order."""
    usage = exchange.usage
    ttft = None
    if exchange.first_chunk_at is not None:
        ttft = int((exchange.first_chunk_at - exchange.started_at) * 1000)
    return {
        "remote": exchange.sink.remote or "-",
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
        "tokens_in": usage.get("prompt_tokens", usage.get("prompt_eval_count")),
        "tokens_out": usage.get("completion_tokens", usage.get("eval_count")),
        "bytes_out": exchange.bytes_out,
        "error": exchange.error or None,
    }


_HEAD = frozenset({"remote", "method", "path", "status"})


def text_line(fields: dict[str, Any]) -> str:
    """``127.0.0.1 "POST /api/chat" 200 task=... key=alice model=... duration_ms=...``"""
    parts = [f'{fields["remote"]} "{fields["method"]} {fields["path"]}" {fields["status"]}']
    for name, value in fields.items():
        if value is not None and name not in _HEAD:
            parts.append(f"{name}={_text(value)}")
    return " ".join(parts)


def _text(value: object) -> str:
    """A value as the text line shows it: quoted when empty or holding a space or quote."""
    if type(value) is int:
        return str(value)
    text = str(value)
    if text and " " not in text and '"' not in text:
        return text
    return '"' + text.replace('"', '\\"') + '"'


def exchange_line(exchange: Exchange) -> str:
    """``text_line(exchange_fields(exchange))``, built without the dictionary in between:
    the access line of nearly every request. Numbers are never quoted, and text that needs
    no quotes (nearly all) is checked in place, without a call to ``_text``."""
    outcome, task_id, name, model = (
        str(exchange.outcome),
        exchange.task_id,
        exchange.principal.name,
        exchange.model,
    )
    if not outcome or " " in outcome or '"' in outcome:
        outcome = _text(outcome)
    line = (
        f'{exchange.sink.remote or "-"} "{exchange.method} {exchange.path}" {exchange.status}'
        f" outcome={outcome}"
    )
    if task_id:
        if " " in task_id or '"' in task_id:
            task_id = _text(task_id)
        line += f" task_id={task_id}"
    if not name or " " in name or '"' in name:
        name = _text(name)
    line += f" key={name}"
    if model is not None:
        if not model or " " in model or '"' in model:
            model = _text(model)
        line += f" model={model}"
    if exchange.backend is not None:
        line += f" backend={_text(exchange.backend.name)}"
    started = exchange.started_at
    duration_ms = int(((exchange.finished_at or time.monotonic()) - started) * 1000)
    line += f" attempts={exchange.attempts} duration_ms={duration_ms}"
    if exchange.first_chunk_at is not None:
        line += f" ttft_ms={int((exchange.first_chunk_at - started) * 1000)}"
    usage = exchange.usage
    if usage:
        tokens_in = usage.get("prompt_tokens", usage.get("prompt_eval_count"))
        if tokens_in is not None:
            line += f" tokens_in={_text(tokens_in)}"
        tokens_out = usage.get("completion_tokens", usage.get("eval_count"))
        if tokens_out is not None:
            line += f" tokens_out={_text(tokens_out)}"
    line += f" bytes_out={exchange.bytes_out}"
    if exchange.error:
        line += f" error={_text(exchange.error)}"
    return line


def _write(fields: dict[str, Any], json_format: bool) -> None:
    if json_format:
        message = f"{fields['method']} {fields['path']} {fields['status']}"
        _emit(message, {"fields": {"event": "access", **fields}})
    else:
        _emit(text_line(fields), None)


def _emit(message: str, extra: dict[str, Any] | None) -> None:
    handler = sole_handler(log)
    if handler is None:
        log.handle(
            log.makeRecord(log.name, logging.INFO, __file__, 0, message, (), None, "_write", extra)
        )
        return
    # The usual case in a served process: the record goes straight to the one handler that
    # would write it (its filters, the redactor among them, still run), without
    # ``LogRecord``'s look at the thread, process and source file, or the walk up the
    # logger tree (together about a third of an access line's cost); a text line even
    # without a record (``info_line``).
    if extra is None and handler.info_line(log.name, message):
        return
    record = _Record(message, extra)
    handler.handle(record)


class _Record(logging.LogRecord):
    """An INFO record of ``ollamux.access`` with only what handlers and formatters read."""

    def __init__(self, message: str, extra: dict[str, Any] | None) -> None:
        now = time.time()
        self.__dict__.update(_RECORD_BASE)
        self.msg = message
        self.created = now
        self.msecs = (now - int(now)) * 1000
        if extra is not None:
            self.__dict__.update(extra)


_RECORD_BASE: dict[str, Any] = dict(
    logging.LogRecord(log.name, logging.INFO, __file__, 0, "", (), None, "_write").__dict__
)


def _after_fork() -> None:  # ``--workers``: each worker's lines carry its own pid
    _RECORD_BASE["process"] = os.getpid()


os.register_at_fork(after_in_child=_after_fork)
