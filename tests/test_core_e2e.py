"""End to end: the real ``ollamux serve`` process, driven by the real ollama and openai SDKs."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import ollama
import openai
import pytest

StartGateway = Callable[[str], Awaitable[str]]

CHAT_MESSAGES = [{"role": "user", "content": "hi"}]
START_DEADLINE_S = 30


async def _wait_listening(url: str, proc: asyncio.subprocess.Process) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_DEADLINE_S
    async with aiohttp.ClientSession() as session:
        while loop.time() < deadline:
            if proc.returncode is not None:
                raise AssertionError(f"ollamux serve exited with {proc.returncode}")
            try:
                async with session.get(url + "/api/version") as resp:
                    await resp.read()
                    return
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
    raise AssertionError("ollamux serve did not listen in time")


@pytest.fixture
async def start_gateway(
    tmp_path: Path, unused_tcp_port_factory: Callable[[], int]
) -> AsyncIterator[StartGateway]:
    """Start ``python -m ollamux serve --port P --backend URL``; yield its base URL."""
    procs: list[tuple[asyncio.subprocess.Process, Path]] = []

    async def start(backend: str) -> str:
        port = unused_tcp_port_factory()
        env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMUX_")}
        env["OLLAMUX_PORT"] = "1"  # the --port flag must win over the environment
        stderr = tmp_path / f"ollamux-{port}.log"
        with stderr.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "ollamux", "serve", "--port", str(port), "--backend", backend),
                cwd=tmp_path,
                env=env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )
        procs.append((proc, stderr))
        url = f"http://127.0.0.1:{port}"
        await _wait_listening(url, proc)
        return url

    yield start
    for proc, stderr in procs:
        if proc.returncode is None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), START_DEADLINE_S)
        assert "Traceback" not in stderr.read_text(), stderr.read_text()


async def _raw(url: str, path: str, body: dict[str, Any]) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.post(url + path, json=body) as resp:
        return resp.status, resp.headers["Content-Type"], await resp.read()


async def test_ollama_sdk_streams_chat_through_the_served_gateway(
    start_gateway: StartGateway, fake_ollama: Any
) -> None:
    fake, fake_url = fake_ollama
    gateway = await start_gateway(fake_url)

    async def chat(host: str) -> list[dict[str, Any]]:
        client = ollama.AsyncClient(host=host)
        stream = await client.chat(model="llama3.2:latest", messages=CHAT_MESSAGES, stream=True)
        return [part.model_dump() async for part in stream]

    direct, relayed = await chat(fake_url), await chat(gateway)
    assert relayed == direct
    assert "".join(p["message"]["content"] for p in relayed) == "Hello there, friend!"
    assert relayed[-1]["done"] is True
    assert fake.received[-1].body["messages"] == CHAT_MESSAGES


async def test_ollama_stream_is_relayed_byte_for_byte(
    start_gateway: StartGateway, fake_ollama: Any
) -> None:
    _fake, fake_url = fake_ollama
    gateway = await start_gateway(fake_url)
    body = {"model": "llama3.2:latest", "messages": CHAT_MESSAGES}
    assert await _raw(gateway, "/api/chat", body) == await _raw(fake_url, "/api/chat", body)


async def test_openai_sdk_chat_through_the_served_gateway(
    start_gateway: StartGateway, fake_openai: Any
) -> None:
    fake, fake_url = fake_openai
    gateway = await start_gateway(fake_url + "#openai")

    def sdk(base: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=base + "/v1", api_key="client-key", max_retries=0)

    async def complete(base: str) -> dict[str, Any]:
        result = await sdk(base).chat.completions.create(model="qwen2.5-7b", messages=CHAT_MESSAGES)
        return result.model_dump()

    async def stream(base: str) -> list[dict[str, Any]]:
        chunks = await sdk(base).chat.completions.create(
            model="qwen2.5-7b", messages=CHAT_MESSAGES, stream=True
        )
        return [c.model_dump() async for c in chunks]

    relayed = await complete(gateway)
    assert "Authorization" not in fake.received[-1].headers  # client credentials stay here
    assert relayed == await complete(fake_url)
    assert relayed["choices"][0]["message"]["content"] == "Hello there!"

    relayed_chunks = await stream(gateway)
    assert relayed_chunks == await stream(fake_url)
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in relayed_chunks) == (
        "Hello there!"
    )


async def test_openai_stream_is_relayed_byte_for_byte(
    start_gateway: StartGateway, fake_openai: Any
) -> None:
    _fake, fake_url = fake_openai
    gateway = await start_gateway(fake_url + "#openai")
    body = {"model": "qwen2.5-7b", "messages": CHAT_MESSAGES, "stream": True}
    path = "/v1/chat/completions"
    assert await _raw(gateway, path, body) == await _raw(fake_url, path, body)
