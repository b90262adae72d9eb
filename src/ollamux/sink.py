"""Where an answer goes: an HTTP client, or a collector for work run in-process (jobs).

The pipeline never talks to aiohttp's response directly; it starts, writes and ends an
answer through a sink, so the same hook chain serves a live request and
``gateway.dispatch`` alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Generator, Mapping
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

# Chunks smaller than this are framed by copying into one buffer (one write), larger ones
# written as three pieces (no copy).
_JOIN_BELOW = 16 * 1024


class Sink:
    """The interface: ``start`` once (status and headers), ``write`` chunks, ``end``."""

    started = False
    remote: str | None = None

    def gone(self) -> bool:
        """Whether the receiver went away (a dropped connection)."""
        return False

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        raise NotImplementedError

    async def start_with_data(self, status: int, headers: Mapping[str, str]) -> None:
        """``start`` when the caller writes (or ends) at once: a sink may then hold the
        head back and send it with those first bytes."""
        await self.start(status, headers)

    async def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def end(self, data: bytes = b"") -> None:
        raise NotImplementedError

    def writable_now(self) -> bool:
        """Whether ``write_now`` may be used: a write that cannot have to wait."""
        return False

    def write_now(self, data: bytes) -> None:
        """Write ``data`` at once, from a callback (only when ``writable_now``)."""
        raise NotImplementedError

    def answer(self) -> web.StreamResponse:
        """What the handler returns to aiohttp once the answer went through this sink."""
        raise NotImplementedError


class HttpSink(Sink):
    """A live client: a streamed aiohttp response, prepared on ``start``.

    A client that stops reading makes writes wait for it; after ``write_timeout_s``
    without progress its connection is dropped and the write raises ``CancelledError``,
    as when the client goes away: the upstream request is cancelled and the backend's
    slot freed. One timer per answer, armed by the first write that has to wait for the
    client (not one per chunk): most answers go out without waiting and never arm one."""

    __slots__ = (
        "_chunked",
        "_handle",
        "_since",
        "_timed_out",
        "_transport",
        "remote",
        "request",
        "response",
        "started",
        "write_timeout_s",
    )

    def __init__(self, request: web.Request, write_timeout_s: float | None = None) -> None:
        self.request = request
        self.remote = request.remote
        self.response: web.StreamResponse | None = None
        self.started = False
        self.write_timeout_s = write_timeout_s
        self._since: float | None = None  # when the write in progress began
        self._handle: asyncio.TimerHandle | None = None
        self._timed_out = False
        # Whether ``write_now`` may frame chunks: the answer is chunked and its head went
        # out (``None`` until the first write tells).
        self._chunked: bool | None = None
        self._transport: asyncio.Transport | None = None

    def gone(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        self.started = True
        self.response = web.StreamResponse(status=status, headers=headers)
        await self.response.prepare(self.request)

    async def start_with_data(self, status: int, headers: Mapping[str, str]) -> None:
        # The head goes out in the same send as the first bytes: one send (a loopback
        # send is ~15 % of a small request's CPU) less per answer.
        self.started = True
        self.response = web.StreamResponse(status=status, headers=headers)
        self.response._send_headers_immediately = False
        await self.response.prepare(self.request)

    async def write(self, data: bytes) -> None:
        assert self.response is not None
        try:
            if self.write_timeout_s:
                await _Watched(self.response.write(data), self._waiting)
            else:
                await self.response.write(data)
        except ConnectionError as exc:
            if self._timed_out:
                raise asyncio.CancelledError from exc
            raise
        finally:
            self._since = None
        if self._timed_out:
            raise asyncio.CancelledError
        if self._chunked is None:  # the head went out with these first bytes
            response = self.response
            self._chunked = (
                response.headers.get("Transfer-Encoding") == "chunked" and not response.compression
            )
            self._transport = self.request.transport

    def writable_now(self) -> bool:
        # Only while the client takes everything written: a backlog goes through ``write``,
        # which waits for the client (and watches how long).
        transport = self._transport
        return (
            self._chunked is True
            and transport is not None
            and not transport.is_closing()
            and not transport.get_write_buffer_size()
        )

    def write_now(self, data: bytes) -> None:
        transport = self._transport
        assert transport is not None
        if len(data) < _JOIN_BELOW:
            transport.write(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))

    async def end(self, data: bytes = b"") -> None:
        assert self.response is not None
        try:
            if self.write_timeout_s:
                await _Watched(self.response.write_eof(data), self._waiting)
            else:
                await self.response.write_eof(data)
        except ConnectionError as exc:
            if self._timed_out:
                raise asyncio.CancelledError from exc
            raise
        finally:
            self._since = None
            if self._handle is not None:  # done: the timer must not keep the request alive
                self._handle.cancel()
                self._handle = None
        if self._timed_out:
            raise asyncio.CancelledError

    def answer(self) -> web.StreamResponse:
        assert self.response is not None
        return self.response

    def _waiting(self) -> None:
        """A write has to wait for the client: watch it."""
        loop = asyncio.get_running_loop()
        self._since = loop.time()
        if self._handle is None and self.write_timeout_s:
            self._handle = loop.call_at(self._since + self.write_timeout_s, self._check)

    def _check(self) -> None:
        """The timer: re-armed while writes go on, dropping the client when one is stuck."""
        self._handle = None
        since, timeout = self._since, self.write_timeout_s
        if since is None or timeout is None:
            return  # no write in progress: the next one arms the timer again
        loop = asyncio.get_running_loop()
        if loop.time() < since + timeout:
            self._handle = loop.call_at(since + timeout, self._check)
            return
        self._timed_out = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()  # drops what is buffered; the stuck write returns


class _Watched:
    """Awaits a write as ``await`` would, calling ``on_wait`` when it first has to wait
    (yields to the event loop): a write that completes at once needs no timer, and arming
    and cancelling one costs more than the rest of a small answer's write."""

    __slots__ = ("_on_wait", "_write")

    def __init__(self, write: Coroutine[Any, Any, None], on_wait: Callable[[], None]) -> None:
        self._write = write
        self._on_wait = on_wait

    def __await__(self) -> Generator[Any, Any, None]:
        write = self._write
        try:
            step = write.send(None)
        except StopIteration:
            return
        self._on_wait()
        while True:  # the rest of ``yield from write``
            try:
                sent = yield step
            except GeneratorExit:
                write.close()
                raise
            except BaseException as exc:  # a cancellation: the write gets it, as it would
                try:
                    step = write.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    step = write.send(sent)
                except StopIteration:
                    return


class CollectSink(Sink):
    """Keeps the whole answer in memory: status, headers and body."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: CIMultiDict[str] = CIMultiDict()
        self._parts: list[bytes] = []
        self.started = False
        self.ended = False

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        self.started = True
        self.status = status
        self.headers = CIMultiDict(headers)

    async def write(self, data: bytes) -> None:
        self._parts.append(data)

    async def end(self, data: bytes = b"") -> None:
        if data:
            self._parts.append(data)
        self.ended = True

    def take(self, response: web.StreamResponse) -> None:
        """Keep an answer the pipeline made whole (an error, a local answer)."""
        self.started = self.ended = True
        self.status = response.status
        self.headers = CIMultiDict(response.headers)
        body = response.body if isinstance(response, web.Response) else None
        self._parts = [body] if isinstance(body, bytes) else []

    @property
    def body(self) -> bytes:
        return b"".join(self._parts)

    def answer(self) -> web.StreamResponse:
        return web.Response(status=self.status or 200)
