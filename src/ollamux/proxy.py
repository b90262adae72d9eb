"""Forwarding one attempt to one backend and relaying its answer to the sink, chunk by chunk.

Nothing here buffers a whole answer: bytes are written to the client as they arrive,
through whatever response transforms plugins asked for. Headers go to the client lazily,
with the first bytes, so a backend that dies before saying anything can still be retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from .backend import Backend
from .dialect import NDJSON, Dialect
from .errors import GatewayError, stream_error_bytes, upstream_error_message
from .exchange import Exchange, LocalResponse, Outcome, ResponseHead, TaskState, UpstreamRequest
from .headers import client_headers, upstream_headers
from .transforms import BadUpstreamAnswer, DialectErrorBody, ResponseTransform
from .upstream_client import UpstreamResponse, request_target

log = logging.getLogger("ollamux.proxy")


class AttemptFailed(Exception):
    """An attempt failed before any byte reached the client: another backend may be tried.

    ``head``/``body`` hold the backend's error answer when there was one (a 5xx), so the
    last failure can be shown to the client as the backend gave it.
    """

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        status: int = 502,
        head: ResponseHead | None = None,
        body: bytes = b"",
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.status = status
        self.head = head
        self.body = body


def passthrough_request(exchange: Exchange, backend: Backend) -> UpstreamRequest:
    """The client's request as it is, addressed to ``backend``."""
    return UpstreamRequest(
        method=exchange.method,
        path=exchange.path,
        query=exchange.query,
        body=exchange.upstream_body() if exchange.method not in ("GET", "HEAD") else None,
    )


async def upstream_request(exchange: Exchange, backend: Backend) -> UpstreamRequest | LocalResponse:
    """What to send ``backend``: a plugin's translation (or local answer), else the client's
    request as it is."""
    up = await exchange.gateway.hooks.translate_request(exchange, backend)
    return passthrough_request(exchange, backend) if up is None else up


def headers_for(
    exchange: Exchange, backend: Backend, up: UpstreamRequest, peer: str | None
) -> CIMultiDict[str]:
    """The headers ``up`` goes to ``backend`` with: the client's that may cross, the
    backend's own, then those the translation set."""
    headers = upstream_headers(exchange.headers, backend.auth_headers(), peer)
    headers.update(up.headers)
    return headers


def request_args(
    exchange: Exchange, backend: Backend, up: UpstreamRequest, peer: str | None
) -> dict[str, Any]:
    """Keyword arguments for ``ClientSession.request`` sending ``up`` to ``backend``."""
    headers = headers_for(exchange, backend, up, peer)
    args: dict[str, Any] = {
        "method": up.method,
        "url": backend.url + up.path + (f"?{up.query}" if up.query else ""),
        "headers": headers,
        "data": up.body,
        "allow_redirects": False,
    }
    if up.body is not None and "Content-Type" not in headers:
        # A body sent without a type goes on without one: aiohttp would label the bytes
        # application/octet-stream, and OpenAI-compatible servers (FastAPI) then refuse
        # the JSON they read when no type is given.
        args["skip_auto_headers"] = ("Content-Type",)
    return args


async def attempt(exchange: Exchange, backend: Backend) -> web.StreamResponse:
    """Run one attempt; returns the finished client response or raises ``AttemptFailed``
    (nothing sent yet) / ``GatewayError``."""
    gw = exchange.gateway
    up = await upstream_request(exchange, backend)
    if isinstance(up, LocalResponse):
        return await _relay_local(exchange, backend, up)
    headers = headers_for(exchange, backend, up, exchange.sink.remote)
    try:
        upstream = await gw.upstream.request(
            up.method, backend.url, request_target(up.path, up.query), headers, up.body
        )
    except TimeoutError as exc:
        raise AttemptFailed(Outcome.TIMEOUT, f"backend {backend.name} timed out", 504) from exc
    except aiohttp.ClientError as exc:
        raise AttemptFailed(
            Outcome.CONNECT_ERROR, f"backend {backend.name} unreachable: {_reason(exc)}", 502
        ) from exc
    try:
        return await _relay(exchange, backend, upstream)
    finally:
        upstream.close()


async def _relay(
    exchange: Exchange, backend: Backend, upstream: UpstreamResponse
) -> web.StreamResponse:
    head = ResponseHead(upstream.status, client_headers(upstream.headers))
    if upstream.status >= 500:
        body, timed_out = await read_bounded(upstream, ERROR_BODY_LIMIT)
        if timed_out:
            raise AttemptFailed(
                Outcome.TIMEOUT, f"backend {backend.name} timed out sending its error answer", 504
            )
        busy = upstream.status == 503 and backend.api is Dialect.OLLAMA
        raise AttemptFailed(
            Outcome.BUSY if busy else Outcome.SERVER_ERROR,
            f"backend {backend.name} answered {upstream.status}: {upstream_error_message(body)}",
            upstream.status,
            head,
            body,
        )
    try:
        relay = await _upstream_started(exchange, backend, head)
    except BadUpstreamAnswer as exc:
        raise AttemptFailed(Outcome.SERVER_ERROR, _unreadable(backend, exc), 502) from exc
    if upstream.status >= 400:
        # An error answer is read whole (to put it in the dialect) but only so far: a body
        # that never ends cannot fill the gateway's memory.
        body, _ = await read_bounded(upstream, ERROR_BODY_LIMIT)
        await relay.finish(body)
        return exchange.sink.answer()
    watch_errors = (
        relay.head.status < 400
        and backend.api is Dialect.OLLAMA
        and NDJSON in upstream.headers.get("Content-Type", "")
    )
    relay.watch_errors = watch_errors
    read = upstream.read_any
    at_eof = upstream.at_eof
    last = b""
    try:
        while data := await read():
            if watch_errors and b'"error"' in data:
                _check_error_line(exchange, data)
            if at_eof():  # known to be the last bytes: they go out with the end
                last = data
                break
            await relay.write(data)
            if upstream.on_data is None and relay.sink.writable_now():
                # The answer is under way: what follows is written on as it arrives, from
                # the connection's callback, without waking this task for every chunk.
                upstream.on_data = relay.push
        await relay.finish(last)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
        if isinstance(exc, aiohttp.ClientConnectionResetError) and exchange.sink.gone():
            raise asyncio.CancelledError from exc
        message = f"backend {backend.name} failed mid-stream: {_reason(exc)}"
        if not relay.started:
            outcome = Outcome.TIMEOUT if isinstance(exc, TimeoutError) else Outcome.SERVER_ERROR
            raise AttemptFailed(
                outcome, message, 504 if outcome is Outcome.TIMEOUT else 502
            ) from exc
        await relay.fail(message)
    except BadUpstreamAnswer as exc:
        if not relay.started:
            raise AttemptFailed(Outcome.SERVER_ERROR, _unreadable(backend, exc), 502) from exc
        await relay.fail(_unreadable(backend, exc))
    return exchange.sink.answer()


# Answers that carry no body, so no length either (RFC 9110).
_NO_BODY_STATUSES = frozenset({204, 304})


class _Relay:
    """Writes transformed bytes to the exchange's sink, starting the answer with the first
    bytes."""

    def __init__(
        self, exchange: Exchange, head: ResponseHead, transforms: list[ResponseTransform]
    ) -> None:
        self.exchange = exchange
        self.head = head
        self.transforms = transforms
        self.headers = head.headers
        self.headers.update(exchange.response_headers)
        self.sink = exchange.sink
        # Ollama ``{"error": ...}`` lines may come inside this 200 stream (``_relay``).
        self.watch_errors = False

    @property
    def started(self) -> bool:
        return self.sink.started

    async def _start(self) -> None:
        ex = self.exchange
        ex.status = self.head.status
        await ex.gateway.hooks.response_started(ex, ex.status)
        await self.sink.start_with_data(ex.status, self.headers)  # always written at once

    def _feed(self, data: bytes) -> bytes:
        """``data`` through the transforms, counted as a chunk sent if anything is left."""
        for t in self.transforms:
            if not data:
                return data
            data = t.feed(data)
        if data:
            ex = self.exchange
            if ex.first_chunk_at is None:
                ex.first_chunk_at = time.monotonic()
            ex.chunks += 1
            ex.bytes_out += len(data)
        return data

    async def _send(self, data: bytes) -> None:
        if not self.sink.started:
            await self._start()
        await self.sink.write(data)

    async def write(self, data: bytes) -> None:
        data = self._feed(data)
        if data:  # ``_send`` inlined: one coroutine less per chunk
            if not self.sink.started:
                await self._start()
            await self.sink.write(data)

    def push(self, data: bytes) -> bool:
        """``write`` without waiting, from the backend connection's callback: ``False``
        (nothing done) when the write might have to wait, or the bytes may hold an error
        line to look at."""
        if (self.watch_errors and b'"error"' in data) or not self.sink.writable_now():
            return False
        data = self._feed(data)
        if data:
            self.sink.write_now(data)
        return True

    async def finish(self, data: bytes = b"") -> None:
        """End the answer; ``data``, the answer's last bytes when already known, is sent
        in the same write as the end (one send instead of two for a small answer)."""
        data = self._feed(data)
        tail = b""
        try:
            for t in self.transforms:
                tail = (t.feed(tail) if tail else b"") + t.end()
        except Exception:
            if data:  # the client gets what it would have got had ``data`` gone out alone
                await self._send(data)
            raise
        if tail:
            self.exchange.chunks += 1
            self.exchange.bytes_out += len(tail)
        body = data + tail if tail else data
        if not self.sink.started:
            if self.head.status not in _NO_BODY_STATUSES and self.exchange.method != "HEAD":
                # The whole answer is known: sent with its length, not chunked, as the
                # backend (Ollama, an OpenAI server) sends a non-streamed answer.
                self.headers["Content-Length"] = str(len(body))
            await self._start()
        await self.sink.end(body)

    async def fail(self, message: str) -> None:
        """End a stream that broke: an error event/line in the endpoint's dialect."""
        ex = self.exchange
        ex.outcome = TaskState.FAILED
        ex.error = message
        ex.stream_broken = True
        if not self.sink.started:
            await self._start()
        words = next(
            (w for w in (t.last_words(message) for t in self.transforms) if w is not None),
            None,
        )
        if words is None:
            words = stream_error_bytes(ex.dialect, message)
        try:
            if words:
                await self.sink.write(words)
            await self.sink.end()
        except (ConnectionError, aiohttp.ClientConnectionResetError):
            pass


def _check_error_line(exchange: Exchange, data: bytes) -> None:
    """An Ollama ``{"error": ...}`` line inside a 200 stream means the request failed."""
    for line in data.split(b"\n"):
        if line.startswith(b'{"error"'):
            try:
                message = str(json.loads(line).get("error"))
            except ValueError:  # the rest of the line comes in the next read
                message = line[len(b'{"error"') :].decode("utf-8", "replace").strip(' :"')
            exchange.outcome = TaskState.FAILED
            exchange.error = message or "backend reported an error"
            exchange.stream_broken = True


async def _relay_local(
    exchange: Exchange, backend: Backend, local: LocalResponse
) -> web.StreamResponse:
    head = ResponseHead(local.status, CIMultiDict({"Content-Type": local.content_type}))
    relay = await _upstream_started(exchange, backend, head)
    await relay.finish(local.body)
    return exchange.sink.answer()


async def _upstream_started(exchange: Exchange, backend: Backend, head: ResponseHead) -> _Relay:
    """``backend`` answered with ``head``: tell the plugins, and get the relay ready."""
    exchange.forwarded_at = time.monotonic()
    await exchange.gateway.hooks.upstream_started(exchange, backend, head)
    return await _transformed_relay(exchange, head)


async def _transformed_relay(exchange: Exchange, head: ResponseHead) -> _Relay:
    """A relay for an answer with ``head``, through the transforms plugins ask for (each
    may change the head first)."""
    transforms = await exchange.gateway.hooks.transform_response(exchange, head)
    if head.status >= 400 and exchange.method != "HEAD":
        transforms.append(DialectErrorBody(exchange.dialect, head.status))
    for t in transforms:
        head = t.head(head)
    return _Relay(exchange, head, transforms)


async def relay_failure(exchange: Exchange, failure: AttemptFailed) -> web.StreamResponse:
    """Show the client the last failed attempt: the backend's own error answer if it gave
    one (through the transforms, so it is in the endpoint's dialect), else a 502/504."""
    if failure.head is None:
        raise GatewayError(failure.status, failure.message)
    head = failure.head
    if failure.outcome is Outcome.BUSY:
        # Every backend was busy: say when to come back, as the queue's own 503 does.
        head.headers.setdefault("Retry-After", "1")
    relay = await _transformed_relay(exchange, head)
    await relay.finish(failure.body)
    return exchange.sink.answer()


# The most of a backend's error answer the gateway reads: the message is near the start,
# and an answer that never ends must not fill the gateway's memory.
ERROR_BODY_LIMIT = 64 * 1024


class BodyTooLarge(Exception):
    """A body the gateway must read whole was larger than it accepts."""


async def read_bounded(upstream: UpstreamResponse, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of ``upstream``'s body, and whether the read timed out.

    Reading stops there (the caller closes the response, dropping the rest with the
    connection); a body cut short by an error or a timeout is what arrived until then."""
    parts: list[bytes] = []
    size = 0
    try:
        while size < limit:
            data = await upstream.read(limit - size)
            if not data:
                break
            parts.append(data)
            size += len(data)
    except TimeoutError:
        return b"".join(parts), True
    except aiohttp.ClientError:
        pass
    if size >= limit and not upstream.at_eof():
        upstream.close()  # the rest is not wanted: drop the connection
    return b"".join(parts), False


async def read_whole(upstream: aiohttp.ClientResponse, limit: int) -> bytes:
    """``upstream``'s whole body, which must be at most ``limit`` bytes (``BodyTooLarge``);
    errors and timeouts propagate."""
    parts: list[bytes] = []
    size = 0
    while True:
        data = await upstream.content.read(limit + 1 - size)
        if not data:
            return b"".join(parts)
        parts.append(data)
        size += len(data)
        if size > limit:
            upstream.close()
            raise BodyTooLarge(f"answer larger than {limit} bytes")


def _unreadable(backend: Backend, exc: BadUpstreamAnswer) -> str:
    return f"backend {backend.name} sent an answer that cannot be understood: {exc}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
