"""The proxy's own HTTP/1.1 client (``ollamux.upstream_client``), against real servers on
loopback: aiohttp for well-behaved backends, scripted asyncio servers for backends that
misbehave on cue (close, hang, cut short, answer garbage)."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict

from ollamux.upstream_client import (
    HIGH_WATER,
    MAX_INFLATED_READ,
    UpstreamPool,
    UpstreamResponse,
    request_target,
)

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Scripted:
    """A TCP server running ``script`` per connection, counting connections."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            try:
                await self.script(reader, writer)
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def answers(raw: bytes, *, close: bool = False) -> Script:
    """A backend that reads one request, sends ``raw``, then closes (``close``) or waits
    for the client to close."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        if raw:
            writer.write(raw)
            await writer.drain()
        if not close:
            await reader.read()

    return script


GZIP_HEAD = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"


async def answer_forever(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer every request on the connection with ``ok`` (keep-alive)."""
    while True:
        try:
            await read_head(reader)
        except asyncio.IncompleteReadError:
            return
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()


@pytest.fixture
async def pool() -> AsyncIterator[UpstreamPool]:
    p = UpstreamPool(connect_timeout=2.0, read_timeout=5.0)
    yield p
    p.close()


async def get(pool: UpstreamPool, url: str, target: str = "/x") -> tuple[int, bytes]:
    response = await pool.request("GET", url, target, CIMultiDict(), None)
    try:
        return response.status, await response.read()
    finally:
        response.close()


async def test_a_kept_alive_connection_carries_the_next_request(pool: UpstreamPool) -> None:
    server = Scripted(answer_forever)
    async with server as url:
        assert await get(pool, url) == (200, b"ok")
        assert await get(pool, url) == (200, b"ok")
    assert server.connections == 1


async def test_a_request_on_a_connection_the_backend_just_closed_goes_again_on_a_new_one(
    pool: UpstreamPool,
) -> None:
    async def close_after_one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)  # the next request arrives: close without a word

    server = Scripted(close_after_one)
    async with server as url:
        assert await get(pool, url) == (200, b"ok")
        assert await get(pool, url) == (200, b"ok")
    assert server.connections == 2


async def test_a_new_connection_closed_before_the_head_is_a_connection_error(
    pool: UpstreamPool,
) -> None:
    close_at_once = answers(b"", close=True)

    server = Scripted(close_at_once)
    async with server as url:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await get(pool, url)
    assert server.connections == 1


async def test_an_unreachable_backend_is_a_connection_error_naming_it(pool: UpstreamPool) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(aiohttp.ClientConnectionError, match=f"127.0.0.1:{port}"):
        await get(pool, f"http://127.0.0.1:{port}")


async def test_a_chunked_body_is_handed_over_as_it_arrives(pool: UpstreamPool) -> None:
    second = asyncio.Event()

    async def two_chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await second.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()

    async with Scripted(two_chunks) as url:
        response = await pool.request("GET", url, "/", CIMultiDict(), None)
        assert await response.read_any() == b"first"
        assert not response.at_eof()
        second.set()
        assert await response.read_any() == b"second"
        assert await response.read_any() == b""
        assert response.at_eof()


async def test_the_chunks_of_one_read_are_read_in_order_and_whole(pool: UpstreamPool) -> None:
    pieces = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in [b"a", b"bc", b"def"] * 50)
    burst = answers(CHUNKED_HEAD + pieces + b"0\r\n\r\n")

    async with Scripted(burst) as url:
        assert await get(pool, url, "/") == (200, b"abcdef" * 50)


async def test_bytes_before_a_fault_in_the_same_read_are_read_before_the_error(
    pool: UpstreamPool,
) -> None:
    faulty = answers(CHUNKED_HEAD + b"4\r\ngood\r\nzz\r\nbad\r\n")

    async with Scripted(faulty) as url:
        response = await pool.request("GET", url, "/", CIMultiDict(), None)
        assert await response.read_any() == b"good"
        with pytest.raises(aiohttp.ClientPayloadError, match="invalid HTTP answer"):
            await response.read_any()


async def test_a_body_without_length_runs_to_the_close(pool: UpstreamPool) -> None:
    until_close = answers(b"HTTP/1.1 200 OK\r\n\r\nall of it", close=True)

    server = Scripted(until_close)
    async with server as url:
        assert await get(pool, url) == (200, b"all of it")
        assert await get(pool, url) == (200, b"all of it")
    assert server.connections == 2  # such a connection is never reused


async def test_a_body_cut_short_of_its_length_is_a_payload_error(pool: UpstreamPool) -> None:
    short = answers(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", close=True)

    async with Scripted(short) as url:
        response = await pool.request("GET", url, "/", CIMultiDict(), None)
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_an_answer_that_is_not_http_is_a_payload_error(pool: UpstreamPool) -> None:
    garbage = answers(b"<html>hello</html>\r\n\r\n")

    async with Scripted(garbage) as url:
        with pytest.raises(aiohttp.ClientPayloadError, match="invalid HTTP answer"):
            await get(pool, url)


async def test_a_backend_silent_before_its_head_times_out() -> None:
    pool = UpstreamPool(connect_timeout=2.0, read_timeout=0.2)

    hang = answers(b"")

    try:
        async with Scripted(hang) as url:
            with pytest.raises(TimeoutError):
                await get(pool, url)
    finally:
        pool.close()


async def test_a_backend_silent_mid_body_times_out() -> None:
    pool = UpstreamPool(connect_timeout=2.0, read_timeout=0.2)

    stall = answers(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")

    try:
        async with Scripted(stall) as url:
            response = await pool.request("GET", url, "/", CIMultiDict(), None)
            assert await response.read_any() == b"hi"
            with pytest.raises(TimeoutError):
                await response.read_any()
    finally:
        pool.close()


async def test_time_the_reader_spends_elsewhere_does_not_count_as_backend_silence() -> None:
    pool = UpstreamPool(connect_timeout=2.0, read_timeout=0.2)
    go_on = asyncio.Event()

    async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")
        await writer.drain()
        await go_on.wait()
        writer.write(b"3\r\nend\r\n0\r\n\r\n")
        await writer.drain()

    try:
        async with Scripted(slow_reader) as url:
            response = await pool.request("GET", url, "/", CIMultiDict(), None)
            assert await response.read_any() == b"hi"
            await asyncio.sleep(0.5)  # a slow client: the relay is busy writing to it
            go_on.set()
            assert await response.read() == b"end"
    finally:
        pool.close()


async def test_a_reader_that_falls_behind_stops_reading_from_the_backend(
    pool: UpstreamPool,
) -> None:
    size = 64 * HIGH_WATER  # far more than the sockets on both sides buffer
    written = asyncio.Event()

    async def big(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        writer.write(b"x" * size)
        await writer.drain()
        written.set()

    async with Scripted(big) as url:
        response = await pool.request("GET", url, "/", CIMultiDict(), None)
        conn = response._conn
        assert conn is not None
        for _ in range(200):  # until the reading stops
            if conn._paused:
                break
            await asyncio.sleep(0.01)
        assert conn._paused
        assert response._buffered <= 2 * HIGH_WATER
        assert not written.is_set()
        assert len(await response.read()) == size


async def test_a_head_answer_ends_at_its_head(pool: UpstreamPool) -> None:
    head = answers(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")

    async with Scripted(head) as url:
        response = await pool.request("HEAD", url, "/", CIMultiDict(), None)
        assert response.status == 200
        assert response.headers["Content-Length"] == "1000"
        assert await response.read() == b""


async def test_an_interim_answer_is_skipped_for_the_real_one(pool: UpstreamPool) -> None:
    interim = answers(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok"
    )

    async with Scripted(interim) as url:
        assert await get(pool, url) == (201, b"ok")


async def test_an_abandoned_answer_drops_its_connection(pool: UpstreamPool) -> None:
    endless = answers(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n")

    server = Scripted(endless)
    async with server as url:
        response = await pool.request("GET", url, "/", CIMultiDict(), None)
        assert await response.read_any() == b"hi"
        response.close()
        second = await pool.request("GET", url, "/", CIMultiDict(), None)
        second.close()
    assert server.connections == 2


async def test_the_request_goes_out_with_its_body_headers_and_url_credentials(
    pool: UpstreamPool, aiohttp_server: Any
) -> None:
    seen: dict[str, Any] = {}

    async def record(request: web.Request) -> web.Response:
        seen.update(
            path=request.raw_path,
            auth=request.headers.get("Authorization"),
            type=request.headers.get("Content-Type"),
            custom=request.headers.get("X-Custom"),
            body=await request.read(),
        )
        return web.Response(text="done")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    server = await aiohttp_server(app)
    url = f"http://us%40er:p%3Ass@127.0.0.1:{server.port}/prefix"
    headers = CIMultiDict({"Content-Type": "application/json", "X-Custom": "v"})
    response = await pool.request("POST", url, "/api/chat?a=1", headers, b'{"x": 1}')
    assert (response.status, await response.read()) == (200, b"done")
    assert seen == {
        "path": "/prefix/api/chat?a=1",
        "auth": "Basic dXNAZXI6cDpzcw==",  # us@er:p:ss
        "type": "application/json",
        "custom": "v",
        "body": b'{"x": 1}',
    }


def test_a_decoded_path_is_percent_encoded_on_the_request_line() -> None:
    assert request_target("/api/show x\r\n", "") == "/api/show%20x%0D%0A"
    assert request_target("/v1/models/a:b", "q=1") == "/v1/models/a:b?q=1"


async def test_a_header_holding_a_line_break_is_refused_before_anything_is_sent(
    pool: UpstreamPool,
) -> None:
    server = Scripted(answer_forever)
    async with server as url:
        with pytest.raises(ValueError, match="line break"):
            await pool.request("GET", url, "/", CIMultiDict({"X": "a\r\nInjected: 1"}), None)
    assert server.connections == 0


async def test_a_head_that_never_ends_fails_without_filling_memory(pool: UpstreamPool) -> None:
    async def endless_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-Long: ")
        while not writer.is_closing():
            writer.write(b"a" * 65536)
            await writer.drain()

    async with Scripted(endless_head) as url:
        with pytest.raises(aiohttp.ClientPayloadError, match="head is too large"):
            await get(pool, url)


async def test_a_compressed_answer_is_decoded(pool: UpstreamPool) -> None:
    text = b'{"message": "' + b"tok " * 1000 + b'"}'
    packed = gzip.compress(text)

    gzipped = answers(GZIP_HEAD % len(packed) + packed)

    async with Scripted(gzipped) as url:
        assert await get(pool, url) == (200, text)


async def test_a_compressed_answer_that_inflates_too_far_fails(pool: UpstreamPool) -> None:
    bomb = gzip.compress(b"\0" * (2 * MAX_INFLATED_READ))

    zip_bomb = answers(GZIP_HEAD % len(bomb) + bomb)

    async with Scripted(zip_bomb) as url:
        response = await pool.request("GET", url, "/", CIMultiDict(), None)
        with pytest.raises(aiohttp.ClientPayloadError, match="inflates too far"):
            await response.read()


async def test_a_body_that_is_not_what_its_encoding_says_is_a_payload_error(
    pool: UpstreamPool,
) -> None:
    not_gzip = answers(
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n\r\nplain"
    )

    async with Scripted(not_gzip) as url:
        response = await pool.request("GET", url, "/", CIMultiDict(), None)
        with pytest.raises(aiohttp.ClientPayloadError, match="undecodable compressed body"):
            await response.read()


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunks_on_cue(go: asyncio.Event, cue: asyncio.Event | None) -> Script:
    """A chunked answer: ``first``; ``second`` once ``go`` is set; the end once ``cue``
    is set (``None``: never; the script returns once the client closed)."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(CHUNKED_HEAD + b"5\r\nfirst\r\n")
        await writer.drain()
        await go.wait()
        writer.write(b"6\r\nsecond\r\n")
        await writer.drain()
        if cue is not None:
            await cue.wait()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        await reader.read()

    return script


async def first_then(pool: UpstreamPool, url: str, go: asyncio.Event) -> UpstreamResponse:
    """The answer, its first chunk read: ``second`` comes while the reader waits."""
    response = await pool.request("GET", url, "/", CIMultiDict(), None)
    assert await response.read_any() == b"first"
    asyncio.get_running_loop().call_soon(go.set)
    return response


async def test_bytes_arriving_while_the_reader_waits_go_to_on_data(pool: UpstreamPool) -> None:
    go, cue = asyncio.Event(), asyncio.Event()
    taken: list[bytes] = []

    def take(data: bytes) -> bool:
        taken.append(data)
        cue.set()
        return True

    async with Scripted(chunks_on_cue(go, cue)) as url:
        response = await first_then(pool, url, go)
        response.on_data = take
        assert await response.read_any() == b""
        assert taken == [b"second"]
        assert response.at_eof()


async def test_bytes_on_data_declines_are_read(pool: UpstreamPool) -> None:
    go, cue = asyncio.Event(), asyncio.Event()
    offered: list[bytes] = []

    def decline(data: bytes) -> bool:
        offered.append(data)
        cue.set()
        return False

    async with Scripted(chunks_on_cue(go, cue)) as url:
        response = await first_then(pool, url, go)
        response.on_data = decline
        assert await response.read() == b"second"
    assert offered == [b"second"]


async def test_what_on_data_raises_is_raised_to_the_reader_and_the_connection_dropped(
    pool: UpstreamPool,
) -> None:
    go, closed = asyncio.Event(), asyncio.Event()

    def refuse(data: bytes) -> bool:
        raise ValueError("not understood")

    async def closed_by_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await chunks_on_cue(go, None)(reader, writer)  # no end: returns once the client closed
        closed.set()

    async with Scripted(closed_by_client) as url:
        response = await first_then(pool, url, go)
        response.on_data = refuse
        with pytest.raises(ValueError, match="not understood"):
            await response.read_any()
        response.close()
        await asyncio.wait_for(closed.wait(), 5)


async def test_a_backend_that_keeps_sending_to_on_data_is_not_silent() -> None:
    pool = UpstreamPool(connect_timeout=2.0, read_timeout=0.2)

    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(CHUNKED_HEAD)
        for _ in range(10):  # 0.5 s in all, never 0.2 s without a byte
            writer.write(b"1\r\nx\r\n")
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        await reader.read()

    taken: list[bytes] = []
    try:
        async with Scripted(trickle) as url:
            response = await pool.request("GET", url, "/", CIMultiDict(), None)
            response.on_data = lambda data: taken.append(data) is None
            rest = await response.read()
        assert b"".join(taken) + rest == b"x" * 10
    finally:
        pool.close()
