"""Crash safety with real gateway processes: kill -9 while jobs run and wait, restart, and
every job completes, its result recorded once; the backend saw each job once per attempt."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as aioredis
import yaml

from tests.fakes.jobs_backend import JobsFake
from tests.jobs_support import eventually

pytestmark = pytest.mark.slow

MODEL = "llama3.2:latest"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Gateway:
    """One ``python -m ollamux serve`` process; ``wrap`` turns its command line into another
    (e.g. to run it in a PID namespace of its own)."""

    def __init__(self, tmp: Path, name: str, backend: str, jobs: dict[str, Any]) -> None:
        self.wrap: Callable[[list[str]], list[str]] = lambda command: command
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / f"{name}.yaml"
        self.log = tmp / f"{name}.log"
        config = {
            "server": {"port": self.port, "shutdown_timeout_s": 1},
            "backends": [{"url": backend, "max_concurrency": 16}],
            "tasks": {"store": "memory"},
            "jobs": jobs,
            "plugins": {"autoload": False},
        }
        self.config.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.wrap([sys.executable, "-m", "ollamux", "serve", "--config", str(self.config)]),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        self.spawn()
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                try:
                    async with http.get(self.url + "/jobs?page_size=1") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(up, within_s=30)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    started: list[Gateway] = []
    yield started
    for gw in started:
        gw.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _submit(http: aiohttp.ClientSession, gw: Gateway, prompt: str) -> str:
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": prompt}}
    async with http.post(gw.url + "/jobs", json=job) as resp:
        assert resp.status == 202
        job_id: str = (await resp.json())["id"]
        return job_id


async def _docs(http: aiohttp.ClientSession, gw: Gateway, ids: list[str]) -> dict[str, Any]:
    docs = {}
    for job_id in ids:
        async with http.get(f"{gw.url}/jobs/{job_id}") as resp:
            docs[job_id] = await resp.json()
    return docs


async def _all_completed(
    http: aiohttp.ClientSession, gw: Gateway, ids: list[str]
) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        docs = await _docs(http, gw, ids)
        return docs if all(d["status"] == "completed" for d in docs.values()) else None

    result: dict[str, Any] = await eventually(done, within_s=60)
    return result


async def _check_exactly_once(
    http: aiohttp.ClientSession, gw: Gateway, backend: JobsFake, prompts: dict[str, str]
) -> dict[str, Any]:
    docs = await _all_completed(http, gw, list(prompts))
    for job_id, prompt in prompts.items():
        async with http.get(f"{gw.url}/jobs/{job_id}/result") as resp:
            assert (await resp.json())["response"] == f"echo: {prompt}"
        assert backend.calls[job_id] == docs[job_id]["attempts"], (prompt, docs[job_id])
    async with http.get(gw.url + "/jobs?status=completed&page_size=100") as resp:
        assert (await resp.json())["total"] == len(prompts)
    return docs


async def test_sqlite_jobs_survive_kill_9(
    tmp_path: Path,
    fake_jobs: tuple[JobsFake, str],
    gateways: list[Gateway],
    http: aiohttp.ClientSession,
) -> None:
    backend, url = fake_jobs
    gw = Gateway(tmp_path, "gw", url, {"sqlite_path": str(tmp_path / "jobs.db"), "workers": 2})
    gateways.append(gw)
    await gw.start()
    prompts: dict[str, str] = {}
    for i in range(3):  # done before the crash: must not run again
        prompts[await _submit(http, gw, f"early-{i}")] = f"early-{i}"
    await _all_completed(http, gw, list(prompts))
    for i in range(2):  # running at the crash: both workers busy
        prompts[await _submit(http, gw, f"block-{i}")] = f"block-{i}"
    await eventually(lambda: _value(backend.blocked == 2))
    for i in range(5):  # queued at the crash
        prompts[await _submit(http, gw, f"late-{i}")] = f"late-{i}"

    gw.kill()
    backend.unblock.set()
    await gw.start()

    docs = await _check_exactly_once(http, gw, backend, prompts)
    for job_id, prompt in prompts.items():
        expected_attempts = 2 if prompt.startswith("block") else 1
        assert docs[job_id]["attempts"] == expected_attempts, (prompt, docs[job_id])


async def test_redis_jobs_survive_kill_9_of_one_of_two_instances(
    tmp_path: Path,
    fake_jobs: tuple[JobsFake, str],
    gateways: list[Gateway],
    http: aiohttp.ClientSession,
    redis_url: str,
) -> None:
    backend, url = fake_jobs
    prefix = f"test-jobs-crash-{uuid.uuid4().hex}:"
    jobs = {
        "store": "redis",
        "redis_url": redis_url,
        "redis_prefix": prefix,
        "workers": 2,
        "lease_s": 3,
    }
    first = Gateway(tmp_path, "first", url, jobs)
    second = Gateway(tmp_path, "second", url, jobs)
    gateways += [first, second]
    try:
        await first.start()
        prompts: dict[str, str] = {}
        for i in range(2):  # running on the first instance when it dies
            prompts[await _submit(http, first, f"block-{i}")] = f"block-{i}"
        await eventually(lambda: _value(backend.blocked == 2))
        for i in range(6):  # queued in Redis, some taken by the second instance
            prompts[await _submit(http, first, f"late-{i}")] = f"late-{i}"
        first.kill()
        backend.unblock.set()
        await second.start()
        await first.start()

        docs = await _check_exactly_once(http, second, backend, prompts)
        for job_id, prompt in prompts.items():
            if prompt.startswith("block"):
                assert docs[job_id]["attempts"] == 2
        late = [j for j, p in prompts.items() if p.startswith("late")]
        assert all(backend.calls[j] == 1 for j in late)
    finally:
        client = aioredis.from_url(redis_url)
        async for key in client.scan_iter(match=prefix + "*"):
            await client.delete(key)
        await client.aclose()


async def _value(value: Any) -> Any:
    await asyncio.sleep(0)
    return value


# -- kill -9 loops -------------------------------------------------------------------------------

KILLS = 3
LOOP_JOBS = 60
LOOP_MAX_ATTEMPTS = KILLS + 2  # a job may be running at every kill and still complete


async def _completed(http: aiohttp.ClientSession, gw: Gateway) -> int:
    async with http.get(gw.url + "/jobs?status=completed&page_size=1") as resp:
        total: int = (await resp.json())["total"]
        return total


async def _kill_loop(
    http: aiohttp.ClientSession,
    backend: JobsFake,
    alive: Gateway,
    victims: list[Gateway],
    label: str,
) -> None:
    """Submit ``LOOP_JOBS`` jobs, kill -9 a gateway ``KILLS`` times while they run (and
    restart it), then check: none lost, none run more often than attempted, none over
    ``max_attempts`` at the backend. Prints the figures."""
    prompts = {}
    for i in range(LOOP_JOBS):
        prompts[await _submit(http, alive, f"job-{i}")] = f"job-{i}"
    for kill in range(KILLS):
        victim = victims[kill % len(victims)]
        goal = (kill + 1) * LOOP_JOBS // (KILLS + 2)
        await eventually(lambda g=goal: _value_of(_completed(http, alive), g), within_s=60)
        victim.kill()
        await victim.start()

    async def settled() -> dict[str, Any] | None:
        docs = await _docs(http, alive, list(prompts))
        return docs if all(d["status"] in ("completed", "failed") for d in docs.values()) else None

    docs: dict[str, Any] = await eventually(settled, within_s=90)
    lost = [j for j, d in docs.items() if d["status"] != "completed"]
    duplicated = [j for j, d in docs.items() if backend.calls[j] > d["attempts"]]
    max_calls = max(backend.calls[j] for j in prompts)
    rerun = sum(1 for j in prompts if backend.calls[j] > 1)
    print(
        f"\n{label}: {LOOP_JOBS} jobs, {KILLS} kill -9: lost {len(lost)}, run more often than "
        f"attempted {len(duplicated)}, run again after a kill {rerun}, most runs of one job "
        f"at the backend {max_calls} (max_attempts {LOOP_MAX_ATTEMPTS})"
    )
    assert lost == [] and duplicated == []
    assert max_calls <= LOOP_MAX_ATTEMPTS
    async with http.get(alive.url + "/jobs?status=completed&page_size=1") as resp:
        assert (await resp.json())["total"] == LOOP_JOBS  # each recorded once


async def test_sqlite_kill_9_loop_loses_nothing_and_runs_nothing_twice_at_once(
    tmp_path: Path,
    fake_jobs: tuple[JobsFake, str],
    gateways: list[Gateway],
    http: aiohttp.ClientSession,
) -> None:
    backend, url = fake_jobs
    backend.delay_s = 0.2
    jobs = {
        "sqlite_path": str(tmp_path / "jobs.db"),
        "workers": 4,
        "lease_s": 3,
        "max_attempts": LOOP_MAX_ATTEMPTS,
    }
    gw = Gateway(tmp_path, "gw", url, jobs)
    gateways.append(gw)
    await gw.start()
    await _kill_loop(http, backend, gw, [gw], "SQLite, one gateway")


async def test_redis_kill_9_loop_of_two_instances_loses_nothing(
    tmp_path: Path,
    fake_jobs: tuple[JobsFake, str],
    gateways: list[Gateway],
    http: aiohttp.ClientSession,
    redis_url: str,
) -> None:
    backend, url = fake_jobs
    backend.delay_s = 0.2
    jobs = {
        "store": "redis",
        "redis_url": redis_url,
        "redis_prefix": f"test-jobs-loop-{uuid.uuid4().hex}:",
        "workers": 4,
        "lease_s": 2,
        "max_attempts": LOOP_MAX_ATTEMPTS,
    }
    first = Gateway(tmp_path, "first", url, jobs)
    second = Gateway(tmp_path, "second", url, jobs)
    gateways += [first, second]
    await asyncio.gather(first.start(), second.start())
    await _kill_loop(http, backend, second, [first, second], "Redis, two instances")


async def _value_of(count: Any, goal: int) -> bool:
    return bool(await count >= goal)
