"""The between-bytes timeout (``routing.read_timeout_s``) after the proxy took it over from
aiohttp's per-read timer (``ollamux.idle``): silence fails the stream, a slow but steady
stream does not."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

LINE = b'{"model":"m","message":{"role":"assistant","content":"x"},"done":false}\n'
LAST = b'{"model":"m","message":{"role":"assistant","content":""},"done":true}\n'


def _backend(lines: int, gap_s: float, then_hang: bool = False) -> web.Application:
    """Streams ``lines`` NDJSON lines ``gap_s`` apart, then ends (or goes silent)."""
    gone = asyncio.Event()

    async def chat(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for i in range(lines):
            if i:
                await asyncio.sleep(gap_s)
            await resp.write(LINE)
        if then_hang:
            try:
                await gone.wait()  # until the proxy hangs up (handler cancelled)
            finally:
                gone.set()
        await resp.write(LAST)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    return app


async def _gateway(gateway_client: Any, aiohttp_server: Any, app: web.Application) -> Any:
    server = await aiohttp_server(app)
    url = str(server.make_url("")).rstrip("/")
    return await gateway_client(
        {"backends": [{"url": url}], "routing": {"read_timeout_s": 0.5, "retries": 0}}
    )


async def test_stream_silent_longer_than_read_timeout_ends_with_error_line(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client = await _gateway(gateway_client, aiohttp_server, _backend(1, 0, then_hang=True))
    resp = await client.post("/api/chat", json={"model": "m", "messages": []})
    assert resp.status == 200
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert lines[0]["done"] is False
    assert "timed out" in lines[-1]["error"]


async def test_stream_slower_in_total_than_read_timeout_but_never_silent_completes(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client = await _gateway(gateway_client, aiohttp_server, _backend(8, 0.1))
    resp = await client.post("/api/chat", json={"model": "m", "messages": []})
    assert resp.status == 200
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert len(lines) == 9
    assert lines[-1]["done"] is True
