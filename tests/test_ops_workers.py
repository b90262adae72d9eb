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


@pytest.mark.slow
async def test_sighup_to_the_supervisor_reloads_every_worker(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    config: dict[str, Any] = {"backends": [{"name": "a", "url": url, "max_concurrency": 4}]}
    gw = await spawn_gateway(dict(config), "--workers", "2")
    config.update(
        server={"port": gw.port},
        tasks={"store": "memory"},
        plugins={"autoload": False},
        backends=[{"name": "b", "url": url, "max_concurrency": 4}],
    )
    gw.write_config(config)
    gw.signal(signal.SIGHUP)
    seen: dict[int, list[str]] = {}

    async def both_reloaded() -> bool:
        stats = await gw.stats()
        seen[stats["pid"]] = [b["name"] for b in stats["backends"]]
        return len(seen) == 2 and all(names == ["b"] for names in seen.values())

    await gw.wait_for(both_reloaded, "both workers to serve the new backend")
    shares = sorted(b["max_concurrency"] for b in (await gw.stats())["backends"])
    assert shares == [2]


@pytest.mark.slow
async def test_with_two_workers_jobs_reenter_the_worker_that_runs_them(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    gw = await spawn_gateway(
        {
            "backends": [{"name": "a", "url": url, "max_concurrency": 4}],
            "jobs": {"store": "sqlite", "default_model": MODEL},
        },
        "--workers",
        "2",
    )
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client:
        ids = []
        for i in range(6):
            async with client.post(gw.url + "/api/v1/prompt", json={"prompt": f"p{i}"}) as r:
                ids.append((await r.json())["id"])
        docs: dict[str, Any] = {}

        async def all_done() -> bool:
            for job_id in ids:
                async with client.get(f"{gw.url}/jobs/{job_id}") as r:
                    docs[job_id] = await r.json()
            return all(d["status"] in ("completed", "failed") for d in docs.values())

        await gw.wait_for(all_done, "every job to finish")
    assert {d["status"] for d in docs.values()} == {"completed"}
    # the worker that claimed a job saw its request come back: it knows the backend
    assert {d["backend"] for d in docs.values()} == {"a"}


@pytest.mark.slow
async def test_workers_on_a_taken_port_stop_with_exit_1(tmp_path: Any) -> None:
    import socket
    import sys

    from tests.fakes.gateway_process import GatewayProcess

    gp = GatewayProcess(tmp_path, {}, "--workers", "2")
    with socket.socket() as taken:  # a listener without SO_REUSEPORT: the workers cannot join
        taken.bind(("127.0.0.1", gp.port))
        taken.listen()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ollamux",
            "serve",
            "--config",
            str(gp.config_path),
            "--workers",
            "2",
            stderr=asyncio.subprocess.PIPE,
        )
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert f"cannot serve on 127.0.0.1:{gp.port}" in err.decode()
    assert "Traceback" not in err.decode()


def test_key_limits_are_split_unless_kept_in_redis(redis_url: str) -> None:
    from ollamux.config_loader import build_config

    keys = [
        {"name": "alice", "key": "k1", "rpm": 601, "max_concurrency": 4},
        {"name": "bob", "key": "k2"},
    ]
    local = build_config({"auth": {"keys": keys}})
    WorkerSlot(1, 2).apply(local)
    alice, bob = local.auth.keys
    assert (alice.rpm, alice.max_concurrency) == (300, 2)
    assert (bob.rpm, bob.max_concurrency) == (0, 0)  # unlimited stays unlimited
    shared = build_config({"auth": {"keys": keys, "redis_url": redis_url}})
    WorkerSlot(1, 2).apply(shared)
    assert (shared.auth.keys[0].rpm, shared.auth.keys[0].max_concurrency) == (601, 4)


@pytest.mark.slow
async def test_metrics_from_any_worker_cover_every_worker(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    _fake, url = fake_ollama
    gw = await spawn_gateway(
        {"backends": [{"name": "a", "url": url, "max_concurrency": 4}]}, "--workers", "2"
    )
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector) as client:
        body = {"model": MODEL, "prompt": "hi", "stream": False}
        for _ in range(8):
            async with client.post(gw.url + "/api/generate", json=body) as resp:
                assert resp.status == 200

        async def scrape_covers_all() -> bool:
            async with client.get(gw.url + "/metrics") as resp:
                text = await resp.text()
            workers: set[str | None] = set()
            total = 0.0
            for family in text_string_to_metric_families(text):
                for s in family.samples:
                    workers.add(s.labels.get("worker"))
                    if (
                        s.name == "ollamux_requests_total"
                        and s.labels["endpoint"] == "/api/generate"
                    ):
                        total += s.value
            return workers == {"0", "1"} and total == 8

        for _ in range(2):  # twice: the kernel may pick either worker to answer
            await gw.wait_for(scrape_covers_all, "a scrape counting both workers' requests")
