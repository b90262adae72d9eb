"""A client that goes away cancels the upstream request, before and after the first byte."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ollamux.exchange import TaskState
from tests.fakes.finished import Finished

DEADLINE_S = 10


def _gateway_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The gateway's own log lines, without the access log (which names every request)."""
    return [
        r
        for r in caplog.records
        if r.name.startswith(("ollamux", "aiohttp")) and r.name != "ollamux.access"
    ]


async def test_disconnect_before_first_byte_cancels_upstream(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = fake_ollama
    fake.mode = "hang"
    finished = Finished()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("finished", finished)])
    caplog.set_level(logging.INFO)
    request = asyncio.ensure_future(
        client.post("/api/chat", json={"model": "llama3.2:latest", "messages": []})
    )
    await asyncio.wait_for(fake.started.wait(), DEADLINE_S)
    request.cancel()  # closes the client's connection to the gateway
    await asyncio.wait_for(fake.disconnected.wait(), DEADLINE_S)
    await asyncio.wait_for(finished.event.wait(), DEADLINE_S)
    (exchange,) = finished.exchanges
    assert exchange.outcome is TaskState.CANCELLED
    records = _gateway_records(caplog)
    (line,) = [r.getMessage() for r in records if "disconnect" in r.getMessage()]
    assert line.startswith("client disconnected: POST /api/chat")
    assert all(r.exc_info is None for r in records)
    assert all(r.levelno < logging.ERROR for r in records)


async def test_disconnect_mid_stream_cancels_upstream(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = fake_ollama
    fake.mode = "hang_body"
    finished = Finished()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("finished", finished)])
    caplog.set_level(logging.INFO)
    resp = await client.post("/api/chat", json={"model": "llama3.2:latest", "messages": []})
    assert resp.status == 200
    first = await asyncio.wait_for(resp.content.readline(), DEADLINE_S)
    assert b'"content": "Hello"' in first
    await asyncio.wait_for(fake.started.wait(), DEADLINE_S)
    resp.close()  # drop the connection mid-stream
    await asyncio.wait_for(fake.disconnected.wait(), DEADLINE_S)
    await asyncio.wait_for(finished.event.wait(), DEADLINE_S)
    (exchange,) = finished.exchanges
    assert exchange.outcome is TaskState.CANCELLED
    assert exchange.chunks >= 1
    records = _gateway_records(caplog)
    assert len([r for r in records if "disconnect" in r.getMessage()]) == 1
    assert all(r.exc_info is None for r in records)
    assert all(r.levelno < logging.ERROR for r in records)


async def test_disconnect_frees_the_backend_slot(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    fake.mode = "hang"
    finished = Finished()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("finished", finished)])
    request = asyncio.ensure_future(
        client.post("/api/generate", json={"model": "llama3.2:latest", "prompt": "x"})
    )
    await asyncio.wait_for(fake.started.wait(), DEADLINE_S)
    request.cancel()
    await asyncio.wait_for(finished.event.wait(), DEADLINE_S)
    fake.mode = "ok"
    resp = await client.post(
        "/api/generate", json={"model": "llama3.2:latest", "prompt": "x", "stream": False}
    )
    assert resp.status == 200
    assert (await resp.json())["response"] == "Hello there, friend!"


async def test_disconnect_before_first_byte_cancels_an_openai_upstream(
    gateway_client: Any, fake_openai: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = fake_openai
    fake.mode = "hang"
    finished = Finished()
    client = await gateway_client(
        {"backends": [{"url": url, "api": "openai"}]}, plugins=[("finished", finished)]
    )
    caplog.set_level(logging.INFO)
    request = asyncio.ensure_future(
        client.post(
            "/v1/chat/completions",
            json={"model": "qwen2.5-7b", "messages": [{"role": "user", "content": "hi"}]},
        )
    )
    await asyncio.wait_for(fake.started.wait(), DEADLINE_S)
    request.cancel()
    await asyncio.wait_for(fake.disconnected.wait(), DEADLINE_S)
    await asyncio.wait_for(finished.event.wait(), DEADLINE_S)
    assert finished.exchanges[0].outcome is TaskState.CANCELLED
    assert all(r.exc_info is None for r in _gateway_records(caplog))
