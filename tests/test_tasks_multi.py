"""Two ollamux processes sharing one Redis see each other's tasks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.tasks_util import MODEL, redis_prefix

__all__ = ["redis_prefix"]

DEADLINE_S = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateways(
    fake_ollama: Any, tmp_path: Path, redis_prefix: str, redis_url: str
) -> Iterator[list[str]]:
    """Two real ``ollamux serve`` processes on their own ports, one Redis between them."""
    _fake, backend_url = fake_ollama
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    for name in ("a", "b"):
        port = free_port()
        config = {
            "server": {"port": port, "log_level": "warning"},
            "backends": [{"url": backend_url, "name": "gpu1"}],
            "tasks": {"store": "redis", "redis_url": redis_url, "redis_prefix": redis_prefix},
            "jobs": {"sqlite_path": str(tmp_path / f"jobs-{name}.db")},
            "plugins": {"autoload": False},
        }
        path = tmp_path / f"ollamux-{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "ollamux", "serve", "--config", str(path)],
                cwd=tmp_path,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        yield urls
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def wait_up(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            async with session.get(f"{url}/tasks/status?limit=1") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not come up")
        await asyncio.sleep(0.05)


async def poll_state(session: aiohttp.ClientSession, url: str, task_id: str, state: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        async with session.get(f"{url}/tasks/status/{task_id}") as resp:
            if resp.status == 200:
                doc = await resp.json()
                if doc["state"] == state:
                    return doc
        if time.monotonic() > deadline:
            raise AssertionError(f"{task_id} never reached {state} on {url}")
        await asyncio.sleep(0.05)


async def test_two_instances_sharing_redis_see_each_others_tasks(gateways: list[str]) -> None:
    a, b = gateways
    async with aiohttp.ClientSession() as session:
        await wait_up(session, a)
        await wait_up(session, b)
        for url, task_id in ((a, "from-a"), (b, "from-b")):
            async with session.post(
                f"{url}/api/chat",
                json={"model": MODEL, "messages": []},
                headers={"X-Task-Id": task_id},
            ) as resp:
                assert resp.status == 200
                assert resp.headers["X-Task-Id"] == task_id
                await resp.read()
        doc = await poll_state(session, b, "from-a", "SUCCESS")
        assert doc["extensions"]["backend"] == "gpu1"
        await poll_state(session, a, "from-b", "SUCCESS")
        for url in (a, b):
            async with session.get(f"{url}/tasks/status") as resp:
                ids = [t["task_id"] for t in (await resp.json())["tasks"]]
            assert ids == ["from-b", "from-a"]
