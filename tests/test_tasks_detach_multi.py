"""Two ``ollamux serve`` processes sharing a Redis task store, driven by the real SDKs: a
streamed chat detached on one is read back whole, and from an offset while it runs, on the
other; and cancelled from the other, which closes the backend's connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import ollama
import openai
import pytest

from tests.fakes.gateway_process import GatewayProcess
from tests.fakes.ollama_backend import FakeOllama
from tests.jobs_support import eventually
from tests.tasks_util import MODEL, redis_prefix

__all__ = ["redis_prefix"]

WORDS = [f" w{i}" for i in range(12)]
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture
async def pair(
    fake_ollama: tuple[FakeOllama, str], tmp_path: Path, redis_prefix: str, redis_url: str
) -> AsyncIterator[tuple[str, str]]:
    _fake, backend_url = fake_ollama
    procs = []
    for name in ("a", "b"):
        home = tmp_path / name
        home.mkdir()
        config = {
            "server": {"log_level": "warning"},
            "backends": [{"url": backend_url, "name": "gpu1"}],
            "tasks": {"store": "redis", "redis_url": redis_url, "redis_prefix": redis_prefix},
        }
        procs.append(GatewayProcess(home, config))
    await asyncio.gather(*(p.start() for p in procs))
    try:
        yield procs[0].url, procs[1].url
    finally:
        await asyncio.gather(*(p.stop() for p in procs))


async def _json(session: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with session.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


async def _state(session: aiohttp.ClientSession, url: str, task_id: str, state: str) -> Any:
    async def check() -> Any:
        status, doc = await _json(session, f"{url}/tasks/status/{task_id}")
        return doc if status == 200 and doc["state"] == state else None

    return await eventually(check)


def _sse_contents(raw: bytes) -> list[str]:
    out = []
    for block in raw.decode().split("\n\n"):
        for line in block.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                choice = (json.loads(line[6:]).get("choices") or [{}])[0]
                out.append(choice.get("delta", {}).get("content") or "")
    return out


async def test_openai_sdk_stream_detached_is_read_whole_and_from_an_offset_on_another_instance(
    pair: tuple[str, str], fake_ollama: tuple[FakeOllama, str]
) -> None:
    a, b = pair
    fake, _url = fake_ollama
    fake.mode, fake.delay_s, fake.words = "slow", 0.05, WORDS
    sdk = openai.AsyncOpenAI(base_url=f"{a}/v1", api_key="unused")
    raw = await sdk.chat.completions.with_raw_response.create(
        model=MODEL, messages=MESSAGES, stream=True, extra_headers={"Prefer": "respond-async"}
    )
    assert raw.status_code == 202
    job_id = json.loads(await raw.http_response.aread())["id"]
    assert raw.headers["Location"] == f"/jobs/{job_id}"
    async with aiohttp.ClientSession() as session:
        await _state(session, b, job_id, "RUNNING")
        async with session.get(f"{b}/tasks/{job_id}/output", params={"from": "3"}) as resp:
            assert resp.headers["Content-Type"] == "text/event-stream"
            tail = await resp.read()
        assert tail.startswith(b"id: 3\n")

        async def result() -> bytes | None:
            async with session.get(f"{a}/jobs/{job_id}/result") as resp:
                return await resp.read() if resp.status == 200 else None

        whole = await eventually(result)
    contents = _sse_contents(whole)
    assert "".join(contents) == "".join(WORDS)
    assert _sse_contents(tail) == contents[3:]


async def test_ollama_sdk_stream_detached_is_cancelled_from_another_instance(
    pair: tuple[str, str], fake_ollama: tuple[FakeOllama, str]
) -> None:
    a, b = pair
    fake, _url = fake_ollama
    fake.mode = "wait"  # the first word, then nothing until released
    sdk = ollama.AsyncClient(host=a, headers={"Prefer": "respond-async"})
    # The SDK's own transport: its typed ``chat`` cannot take a 202 (no "message").
    raw = await sdk._request_raw(
        "POST", "/api/chat", json={"model": MODEL, "messages": MESSAGES, "stream": True}
    )
    assert raw.status_code == 202
    job_id = raw.json()["id"]
    await asyncio.wait_for(fake.started.wait(), 15)
    async with aiohttp.ClientSession() as session:
        await _state(session, b, job_id, "RUNNING")
        async with session.delete(f"{b}/tasks/{job_id}") as resp:
            assert resp.status == 202, await resp.text()
        await asyncio.wait_for(fake.disconnected.wait(), 15)
        doc = await _state(session, b, job_id, "CANCELLED")
        assert doc["extensions"]["cancelled_by"] == "anonymous"

        async def job_cancelled() -> bool:
            _status, job = await _json(session, f"{a}/jobs/{job_id}")
            return bool(job["status"] == "cancelled")

        await eventually(job_cancelled)


async def test_a_live_stream_is_cancelled_from_another_instance(
    pair: tuple[str, str], fake_ollama: tuple[FakeOllama, str]
) -> None:
    a, b = pair
    fake, _url = fake_ollama
    fake.mode = "wait"
    sdk = ollama.AsyncClient(host=a, headers={"X-Task-Id": "live-x"})
    stream = await sdk.chat(model=MODEL, messages=MESSAGES, stream=True)
    first = await anext(stream)
    assert first.message.content == "Hello"
    async with aiohttp.ClientSession() as session:
        await _state(session, b, "live-x", "RUNNING")
        async with session.delete(f"{b}/tasks/live-x") as resp:
            assert resp.status == 202
        with pytest.raises(ollama.ResponseError, match="cancelled by anonymous"):
            async for _part in stream:
                pass
        await asyncio.wait_for(fake.disconnected.wait(), 15)
        await _state(session, b, "live-x", "CANCELLED")


async def test_a_task_running_on_one_instance_is_watched_from_the_other(
    pair: tuple[str, str], fake_ollama: tuple[FakeOllama, str]
) -> None:
    a, b = pair
    fake, _url = fake_ollama
    fake.mode, fake.delay_s, fake.words = "slow", 0.05, WORDS
    sdk = ollama.AsyncClient(host=a, headers={"X-Task-Id": "watched"})
    stream = await sdk.chat(model=MODEL, messages=MESSAGES, stream=True)
    await anext(stream)
    docs: list[dict[str, Any]] = []
    async with aiohttp.ClientSession() as session:
        await _state(session, b, "watched", "RUNNING")
        async with session.get(f"{b}/tasks/watched/events") as resp:
            rest = asyncio.ensure_future(_drain(stream))
            async for raw in resp.content:
                line = raw.decode()
                if line.startswith("data:"):
                    docs.append(json.loads(line[5:]))
        await rest
    tokens = [d["extensions"]["tokens"] for d in docs if d["state"] == "RUNNING"]
    assert len(set(tokens)) >= 3 and tokens == sorted(tokens)
    assert docs[-1]["state"] == "SUCCESS"
    assert docs[-1]["extensions"]["eval_count"] == len(WORDS)


async def _drain(stream: Any) -> None:
    async for _part in stream:
        pass
