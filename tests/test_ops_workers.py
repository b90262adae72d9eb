"""``ollamux serve --workers N``: N processes on one port, sharing max_concurrency."""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Any

import aiohttp
import pytest

from ollamux.workers import WorkerSlot

MODEL = "llama3.2:latest"


def test_max_concurrency_is_split_so_the_shares_add_up() -> None:
    assert [WorkerSlot(i, 2).share(5) for i in range(2)] == [3, 2]
    assert [WorkerSlot(i, 4).share(8) for i in range(4)] == [2, 2, 2, 2]
    assert WorkerSlot(0, 1).share(7) == 7


def test_a_worker_never_gets_a_zero_share() -> None:
    assert [WorkerSlot(i, 3).share(1) for i in range(3)] == [1, 1, 1]


@pytest.mark.slow
async def test_two_workers_both_serve_and_split_max_concurrency(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    gw = await spawn_gateway(
        {"backends": [{"name": "a", "url": url, "max_concurrency": 3}]}, "--workers", "2"
    )
    seen: dict[int, int] = {}

    async def both_seen() -> bool:
        stats = await gw.stats()
        seen[stats["pid"]] = stats["backends"][0]["max_concurrency"]
        return len(seen) == 2

    await gw.wait_for(both_seen, "answers from two worker processes")
    assert sorted(seen.values()) == [1, 2]
    async with aiohttp.ClientSession() as client:
        body = {"model": MODEL, "prompt": "hi", "stream": False}
        async with client.post(gw.url + "/api/generate", json=body) as resp:
            assert resp.status == 200
    gw.signal(signal.SIGTERM)
    assert await gw.wait_exit() == 0


@pytest.mark.slow
async def test_two_workers_never_exceed_max_concurrency_together(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    pytest.importorskip("ollamux.plugins.balancer.fleet", reason="needs the balancer's caps")
    fake, url = fake_ollama
    fake.mode = "slow"
    fake.delay_s = 0.02
    peak = 0
    now = 0
    original = fake._generation

    async def counting(request: Any, body: Any, chat: bool) -> Any:
        nonlocal peak, now
        now += 1
        peak = max(peak, now)
        try:
            return await original(request, body, chat)
        finally:
            now -= 1

    fake._generation = counting  # type: ignore[method-assign]
    gw = await spawn_gateway(
        {
            "backends": [{"name": "a", "url": url, "max_concurrency": 2}],
            "routing": {"queue_timeout_s": 30},
        },
        "--workers",
        "2",
    )

    async def one(client: aiohttp.ClientSession) -> int:
        body = {"model": MODEL, "messages": []}
        async with client.post(gw.url + "/api/chat", json=body) as resp:
            lines = (await resp.read()).splitlines()
            assert json.loads(lines[-1])["done"] is True
            return resp.status

    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client:
        statuses = await asyncio.gather(*(one(client) for _ in range(12)))
    assert statuses == [200] * 12
    assert 1 <= peak <= 2
