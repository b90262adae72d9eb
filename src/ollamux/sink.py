"""Where an answer goes: an HTTP client, or a collector for work run in-process (jobs).

The pipeline never talks to aiohttp's response directly; it starts, writes and ends an
answer through a sink, so the same hook chain serves a live request and
``gateway.dispatch`` alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from multidict import CIMultiDict


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

    def answer(self) -> web.StreamResponse:
        """What the handler returns to aiohttp once the answer went through this sink."""
        raise NotImplementedError


class HttpSink(Sink):
    """A live client: a streamed aiohttp response, prepared on ``start``."""

    __slots__ = ("remote", "request", "response", "started")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.remote = request.remote
        self.response: web.StreamResponse | None = None
        self.started = False

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
        await self.response.write(data)

    async def end(self, data: bytes = b"") -> None:
        assert self.response is not None
        await self.response.write_eof(data)

    def answer(self) -> web.StreamResponse:
        assert self.response is not None
        return self.response


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
