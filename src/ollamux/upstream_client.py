"""The lean HTTP/1.1 client the proxy forwards with: pooled keep-alive connections, one
write per request, answers parsed in C (httptools), bodies handed over as they arrive.

aiohttp's ``ClientSession`` is the largest share of a bare relay's CPU per request (URL
objects, cookie and trace machinery, a task to write each body, a timer re-armed on every
read). The proxy needs none of that: it sends bytes it already holds to a backend it
already knows and relays what comes back. Everything else that talks to backends (probes,
listings, management calls) keeps using the session.

Failures are aiohttp's exception types, so callers tell them apart as they did: a
``TimeoutError`` (connect or between-bytes), a ``ClientConnectionError`` (refused, reset,
closed before the head), a ``ClientPayloadError`` (cut short or unparseable).
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit

import aiohttp
import httptools
from multidict import CIMultiDict

# A reader this far behind stops reading from the backend until it catches up.
HIGH_WATER = 256 * 1024
# The most an answer's status line and headers may take (aiohttp allows 8 KiB per line).
MAX_HEAD_BYTES = 64 * 1024
# The most one read from a compressed answer may decompress to (a zip bomb fills no memory).
MAX_INFLATED_READ = 64 * 1024 * 1024
# Idle connections kept per backend, and for how long.
MAX_IDLE_PER_ORIGIN = 256
KEEPALIVE_S = 15.0


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a backend URL points: connection key, ``Host`` value, path prefix, and the
    ``Authorization`` its ``user:password@`` stands for."""

    scheme: str
    host: str
    port: int
    host_header: str
    prefix: str
    basic_auth: str | None

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        default = (parts.scheme, port) in (("http", 80), ("https", 443))
        auth = None
        if parts.username is not None:
            raw = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = "Basic " + base64.b64encode(raw.encode()).decode()
        return cls(
            parts.scheme,
            host,
            port,
            shown if default else f"{shown}:{port}",
            parts.path.rstrip("/"),
            auth,
        )


class UpstreamResponse:
    """A backend's answer: status and headers, then the body as it arrives."""

    __slots__ = (
        "_buffer",
        "_buffered",
        "_conn",
        "_done",
        "_error",
        "_handing",
        "_waiter",
        "headers",
        "on_data",
        "status",
    )

    def __init__(self, conn: _Connection, status: int, headers: CIMultiDict[str]) -> None:
        self.status = status
        self.headers = headers
        self._conn: _Connection | None = conn
        self._buffer: deque[bytes] = deque()
        self._buffered = 0
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        # Takes the body's bytes as they arrive while the reader waits, instead of waking
        # it: ``True`` when they were dealt with (written on), ``False`` to have them read.
        # What it raises is raised to the reader.
        self.on_data: Callable[[bytes], bool] | None = None
        self._handing = False  # a hand-over to ``on_data`` is due

    def at_eof(self) -> bool:
        """Whether the whole body has arrived and been read."""
        return self._done and not self._buffer

    async def read_any(self) -> bytes:
        """The bytes that arrived since the last read (waiting for some); ``b""`` at the
        end of the body."""
        if not self._buffer:
            if self._done:
                return b""
            if self._error is not None:
                raise self._error
            conn = self._conn
            if conn is None:
                raise aiohttp.ClientConnectionError("the answer was closed")
            self._waiter = conn.loop.create_future()
            conn.waiting_since = conn.loop.time()
            try:
                await self._waiter
            finally:
                self._waiter = None
                conn.waiting_since = None
            if not self._buffer:
                if self._error is not None:
                    raise self._error
                return b""
        buffer = self._buffer
        data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
        buffer.clear()
        was = self._buffered
        self._buffered = 0
        if was > HIGH_WATER and self._conn is not None:
            self._conn.resume()
        return data

    async def read(self, n: int = -1) -> bytes:
        """At most ``n`` bytes of the body (all of it when ``n`` < 0); ``b""`` at its end."""
        if n < 0:
            parts = []
            while data := await self.read_any():
                parts.append(data)
            return b"".join(parts)
        if not self._buffer:
            data = await self.read_any()
            if len(data) <= n:
                return data
            self._feed_front(data[n:])
            return data[:n]
        data = self._buffer.popleft()
        if len(data) > n:
            self._buffer.appendleft(data[n:])
            data = data[:n]
        self._buffered -= len(data)
        if self._buffered <= HIGH_WATER and self._conn is not None:
            self._conn.resume()
        return data

    def _feed_front(self, data: bytes) -> None:
        self._buffer.appendleft(data)
        self._buffered += len(data)

    def close(self) -> None:
        """Done with this answer: a connection still carrying its body is dropped."""
        conn = self._conn
        if conn is not None and not self._done:
            self._conn = None
            conn.abort()

    # -- called by the connection ----------------------------------------------------------

    def _data(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and self._conn is not None:
            self._conn.pause()
        if self.on_data is not None and self._waiter is not None:
            if not self._handing:  # what else arrives meanwhile goes with it
                self._handing = True
                asyncio.get_running_loop().call_soon(self._hand_over)
            return
        self._wake()

    def _hand_over(self) -> None:
        """Give what arrived to ``on_data`` while the reader still waits; what it does not
        take (or an error it raises) wakes the reader."""
        self._handing = False
        waiter, on_data, buffer = self._waiter, self.on_data, self._buffer
        if waiter is None or waiter.done() or not buffer:
            return  # the reader was woken (the end, a failure) and takes the bytes itself
        if on_data is not None:
            data = buffer[0] if len(buffer) == 1 else b"".join(buffer)
            try:
                taken = on_data(data)
            except Exception as exc:
                self.on_data = None
                buffer.clear()
                self._error = exc  # the connection stays: ``close`` drops it
                taken = False
            if taken:
                buffer.clear()
                was = self._buffered
                self._buffered = 0
                conn = self._conn
                if conn is not None:
                    if was > HIGH_WATER:
                        conn.resume()
                    if conn.waiting_since is not None:
                        conn.waiting_since = conn.loop.time()  # the backend is not silent
                return
        self._wake()

    def _finished(self) -> None:
        self._done = True
        self._conn = None
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        if self._done:
            return
        self._error = exc
        self._conn = None
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a backend, carrying one request at a time."""

    def __init__(self, pool: UpstreamPool, origin: Origin) -> None:
        self.pool = pool
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False
        self.idle_since = 0.0
        # The request in flight: its head (until complete), its response once the head is in.
        self._head_waiter: asyncio.Future[UpstreamResponse] | None = None
        self._response: UpstreamResponse | None = None
        self._headers: CIMultiDict[str] = CIMultiDict()
        self._head_only = False
        self._inflate: Any = None  # a zlib decompressor when the answer is compressed
        self._callback_error = ""
        self._until_close = False
        self._got_bytes = False
        self._head_bytes = 0
        self._paused = False
        # The body bytes parsed from the read at hand: handed to the response once the
        # read is parsed (one hand-over for a read of many chunks, not one per chunk).
        self._body: list[bytes] = []
        self.waiting_since: float | None = None
        self.watched = False  # in the pool's between-bytes watch

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        if self._head_waiter is None and self._response is None:
            self.abort()  # bytes nobody asked for: the connection cannot be trusted
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._hand_body()  # what came before the fault is read before the error
            reason = self._callback_error or f"invalid HTTP answer: {exc}"
            self._broken(aiohttp.ClientPayloadError(reason))
            return
        if self._body:
            self._hand_body()
        if self._head_waiter is not None:  # the head is still coming
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:  # a head that never ends fills no memory
                self._broken(aiohttp.ClientPayloadError("the answer's head is too large"))

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._unwatch()
        response = self._response
        if response is not None and not response._done:
            self._response = None
            if self._until_close and exc is None:
                response._finished()  # the body ran to the close, as its head said it would
            else:
                response._fail(aiohttp.ClientPayloadError("Response payload is not completed"))
        elif self._head_waiter is not None and not self._head_waiter.done():
            self._head_waiter.set_exception(aiohttp.ServerDisconnectedError())

    # -- httptools callbacks ---------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.add(name.decode("latin-1"), value.decode("utf-8", "surrogateescape"))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:  # an interim answer (100 Continue): the real one follows
            self._headers = CIMultiDict()
            return
        headers = self._headers
        self._headers = CIMultiDict()
        self.waiting_since = None  # the reader is busy with the head until it reads again
        self._until_close = "Content-Length" not in headers and "Transfer-Encoding" not in headers
        coding = headers.get("Content-Encoding", "").strip().lower()
        # Nothing asks for compression; a backend that compresses anyway is decoded here,
        # as aiohttp's client did (gzip or zlib, told apart by their headers).
        self._inflate = zlib.decompressobj(47) if coding in _INFLATABLE else None
        response = UpstreamResponse(self, status, headers)
        waiter = self._head_waiter
        self._head_waiter = None
        if waiter is None or waiter.done():
            self.abort()
            return
        self._response = response
        waiter.set_result(response)
        if self._head_only:  # a HEAD answer's length describes a body that is not sent
            self._response = None
            response._finished()
            self.abort()

    def on_body(self, body: bytes) -> None:
        if self._response is None:
            return
        if self._inflate is not None:
            body = self._inflated(body)
            if not body:
                return
        self._body.append(body)

    def _hand_body(self) -> None:
        """Give the body bytes parsed so far to the response, as one piece."""
        body, response = self._body, self._response
        if body and response is not None:
            self._body = []
            response._data(body[0] if len(body) == 1 else b"".join(body))

    def _inflated(self, data: bytes) -> bytes:
        """``data`` decompressed; a failure stops the parser (httptools reports it without
        its words, so they are kept for ``data_received``)."""
        inflate = self._inflate
        try:
            out = inflate.decompress(data, MAX_INFLATED_READ)
        except zlib.error as exc:
            self._callback_error = f"an undecodable compressed body: {exc}"
            raise
        if inflate.unconsumed_tail:
            self._callback_error = "a compressed body that inflates too far"
            raise ValueError(self._callback_error)
        return bytes(out)

    def on_message_complete(self) -> None:
        response = self._response
        if response is None:
            return
        self._hand_body()
        self._response = None
        self._unwatch()
        if self._inflate is not None:
            tail = self._inflate.flush()
            self._inflate = None
            if tail:
                response._data(tail)
        response._finished()
        if self.parser.should_keep_alive() and not self._until_close:
            self.pool._release(self)
        else:
            self.abort()

    # -- used by the pool and the response -------------------------------------------------

    def send(
        self, data: list[bytes], head_only: bool, read_timeout: float | None
    ) -> asyncio.Future[UpstreamResponse]:
        """Write a whole request; the future gets the answer once its head is in."""
        assert self.transport is not None
        waiter: asyncio.Future[UpstreamResponse] = self.loop.create_future()
        self._head_waiter = waiter
        self._head_only = head_only
        self._got_bytes = False
        self._head_bytes = 0
        if len(data) == 1:
            self.transport.write(data[0])
        else:
            self.transport.writelines(data)
        if read_timeout:
            self.waiting_since = self.loop.time()
            self.pool._watch(self)
        return waiter

    def pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.lost:
            self._paused = False
            self.transport.resume_reading()

    def abort(self) -> None:
        """Drop the connection (its request, if any, fails)."""
        self._unwatch()
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def usable(self) -> bool:
        return not self.lost and self.transport is not None and not self.transport.is_closing()

    def _unwatch(self) -> None:
        if self.watched:
            self.watched = False
            self.pool._watched.discard(self)

    def silent_for(self, now: float) -> float:
        """How long the reader has been waiting for this backend (0 while it is busy
        elsewhere: time spent writing to a slow client is not the backend's silence)."""
        since = self.waiting_since
        return 0.0 if since is None else now - since

    def _broken(self, exc: BaseException) -> None:
        """The request in flight fails with ``exc``; the connection is dropped."""
        waiter, response = self._head_waiter, self._response
        self._head_waiter = self._response = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        if response is not None:
            response._fail(exc)
        self.abort()


class UpstreamPool:
    """Keep-alive connections to backends, and requests over them."""

    def __init__(self, connect_timeout: float | None, read_timeout: float | None) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: dict[Origin, list[_Connection]] = {}
        self._origins: dict[str, Origin] = {}
        self._ssl: ssl.SSLContext | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False
        # Requests in flight, checked for backend silence by one ticker (no timer each).
        self._watched: set[_Connection] = set()
        self._ticker: asyncio.TimerHandle | None = None

    def origin(self, url: str) -> Origin:
        found = self._origins.get(url)
        if found is None:
            found = self._origins[url] = Origin.parse(url)
        return found

    async def request(
        self,
        method: str,
        base_url: str,
        target: str,
        headers: CIMultiDict[str],
        body: bytes | None,
    ) -> UpstreamResponse:
        """Send ``method target`` to the backend at ``base_url`` (its path prefix added);
        returns once the answer's head is in."""
        origin = self.origin(base_url)
        data = _request_bytes(method, origin, target, headers, body)
        head_only = method == "HEAD"
        while True:
            conn = self._pooled(origin)
            fresh = conn is None
            if conn is None:
                conn = await self._connect(origin)
            waiter = conn.send(data, head_only, self.read_timeout)
            try:
                return await waiter
            except aiohttp.ServerDisconnectedError:
                # A kept-alive connection the backend closed as the request went out: the
                # backend never saw it, so it goes again on a new connection.
                if fresh or conn._got_bytes:
                    raise
            except BaseException:
                conn.abort()
                raise

    def _pooled(self, origin: Origin) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
        return None

    async def _connect(self, origin: Origin) -> _Connection:
        loop = asyncio.get_running_loop()
        kwargs: dict[str, Any] = {}
        if origin.scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            kwargs = {"ssl": self._ssl, "server_hostname": origin.host}
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin), origin.host, origin.port, **kwargs
                )
        except TimeoutError as exc:
            raise aiohttp.ConnectionTimeoutError(
                f"Connection timeout to host {origin.host}:{origin.port}"
            ) from exc
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise aiohttp.ClientOSError(
                exc.errno or 0, f"Cannot connect to host {origin.host}:{origin.port} [{reason}]"
            ) from exc
        return conn

    def _watch(self, conn: _Connection) -> None:
        conn.watched = True
        self._watched.add(conn)
        if self._ticker is None and self.read_timeout:
            self._ticker = conn.loop.call_later(_tick_s(self.read_timeout), self._tick)

    def _tick(self) -> None:
        """Fail the requests whose backend has been silent longer than ``read_timeout``
        (within a quarter of it, at most a second, late)."""
        self._ticker = None
        timeout = self.read_timeout
        if not self._watched or not timeout:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in [c for c in self._watched if c.silent_for(now) >= timeout]:
            conn._broken(aiohttp.SocketTimeoutError("Timeout on reading data from socket"))
        if self._watched:
            self._ticker = loop.call_later(_tick_s(timeout), self._tick)

    def _release(self, conn: _Connection) -> None:
        if self._closed or not conn.usable():
            conn.abort()
            return
        idle = self._idle.setdefault(conn.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            conn.abort()
            return
        conn.idle_since = conn.loop.time()
        idle.append(conn)
        if self._sweeper is None:
            self._sweeper = conn.loop.call_later(KEEPALIVE_S, self._sweep)

    def _sweep(self) -> None:
        """Close connections idle longer than ``KEEPALIVE_S``."""
        self._sweeper = None
        loop = asyncio.get_running_loop()
        cutoff = loop.time() - KEEPALIVE_S
        left = False
        for idle in self._idle.values():
            keep = []
            for conn in idle:
                if conn.idle_since > cutoff and conn.usable():
                    keep.append(conn)
                else:
                    conn.abort()
            idle[:] = keep
            left = left or bool(keep)
        if left:
            self._sweeper = loop.call_later(KEEPALIVE_S, self._sweep)

    def close(self) -> None:
        """Close every idle connection (those in use close when their answer is done)."""
        self._closed = True
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for idle in self._idle.values():
            for conn in idle:
                conn.abort()
        self._idle.clear()


# A request target that needs no percent-encoding (the common case: skip ``quote``).
_PLAIN_TARGET = re.compile(r"[A-Za-z0-9/._~!$&'()*+,;=:@?%-]*\Z").match
_TARGET_SAFE = "/._~!$&'()*+,;=:@?%-"
# Bodies up to this size go out in the same buffer as the head (one copy, one send).
_JOIN_LIMIT = 256 * 1024


def request_target(path: str, query: str) -> str:
    """``path?query`` as it goes on the request line: what is not allowed there
    percent-encoded (aiohttp hands the gateway decoded paths), escapes kept."""
    target = f"{path}?{query}" if query else path
    return target if _PLAIN_TARGET(target) else quote(target, safe=_TARGET_SAFE)


_INFLATABLE = frozenset({"gzip", "x-gzip", "deflate"})


def _tick_s(timeout: float) -> float:
    return min(1.0, timeout / 4)


def _request_bytes(
    method: str,
    origin: Origin,
    target: str,
    headers: CIMultiDict[str],
    body: bytes | None,
) -> list[bytes]:
    """The request as it goes on the wire: the head, with the body in the same buffer
    unless it is large."""
    lines = [f"{method} {origin.prefix}{target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
    for name, value in headers.items():
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n")
    if origin.basic_auth is not None and "Authorization" not in headers:
        lines.append(f"Authorization: {origin.basic_auth}\r\n")
    if body is None:
        lines.append("\r\n")
        return ["".join(lines).encode("utf-8", "surrogateescape")]
    lines.append(f"Content-Length: {len(body)}\r\n\r\n")
    head = "".join(lines).encode("utf-8", "surrogateescape")
    if not body:
        return [head]
    return [head + body] if len(body) <= _JOIN_LIMIT else [head, body]
