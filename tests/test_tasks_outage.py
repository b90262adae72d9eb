"""The store going away mid-run: requests still succeed, the failure is logged once, the
status API answers 503, and the writes held back land once the store is back."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from ollamux.plugins.tasks.routes import TRACKER
from ollamux.testing import gateway_of
from tests.tasks_util import MODEL, wait_for_state, wait_until

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of this test's own on a free loopback port, to be killed at will."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    server.kill()


async def chat(client: Any, task_id: str) -> Any:
    resp = await client.post(
        "/api/chat", json={"model": MODEL, "messages": []}, headers={"X-Task-Id": task_id}
    )
    await resp.read()
    return resp


def store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ollamux.tasks" and "task store unavailable" in r.getMessage()
    ]


async def test_redis_dying_mid_run_fails_no_request_and_status_api_says_503(
    gateway_client: Any, fake_ollama: Any, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    _fake, url = fake_ollama
    caplog.set_level(logging.WARNING, logger="ollamux.tasks")
    client = await gateway_client(
        {
            "backends": [{"url": url}],
            "tasks": {"store": "redis", "redis_url": own_redis.url},
        }
    )
    assert (await chat(client, "before-1")).status == 200
    await wait_for_state(client, "before-1", "SUCCESS")

    own_redis.kill()
    for i in range(5):
        resp = await chat(client, f"during-{i}")
        assert resp.status == 200
        assert resp.headers["X-Task-Id"] == f"during-{i}"
    listing = await client.get("/tasks/status")
    assert listing.status == 503
    assert listing.headers["Retry-After"] == "1"
    assert "unavailable" in (await listing.json())["error"]
    assert (await client.get("/tasks/status/before-1")).status == 503
    await wait_until(lambda: store_warnings(caplog))
    assert len(store_warnings(caplog)) == 1

    own_redis.start()  # the same port: the writes held back are flushed
    await wait_for_state(client, "during-4", "SUCCESS")
    assert len(store_warnings(caplog)) == 1


async def test_redis_down_at_start_does_not_stop_the_gateway(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(
        {
            "backends": [{"url": url}],
            "tasks": {"store": "redis", "redis_url": f"redis://127.0.0.1:{free_port()}/0"},
        }
    )
    assert (await chat(client, "no-store-1")).status == 200
    assert (await client.get("/tasks/status/no-store-1")).status == 503


async def test_sqlite_closing_mid_run_fails_no_request(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(
        {
            "backends": [{"url": url}],
            "tasks": {"store": "sqlite", "sqlite_path": str(tmp_path / "t.db")},
        }
    )
    assert (await chat(client, "sq-1")).status == 200
    await wait_for_state(client, "sq-1", "SUCCESS")
    tracker = gateway_of(client).app[TRACKER]  # type: ignore[index]
    await tracker.store.close()
    results = await asyncio.gather(*(chat(client, f"sq-during-{i}") for i in range(10)))
    assert [r.status for r in results] == [200] * 10
    assert (await client.get("/tasks/status")).status == 503
    await wait_until(lambda: not tracker.writer.healthy)
