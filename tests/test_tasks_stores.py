"""The stores underneath: SQLite file and Redis keys as others see them, TTLs and sweeps,
and the writer's coalescing (one write per state change, never one per chunk)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from ollamux.plugins.tasks.memory_store import MemoryStore
from ollamux.plugins.tasks.routes import TRACKER
from ollamux.plugins.tasks.store import TaskRecord
from ollamux.testing import gateway_of
from tests.tasks_util import (
    MODEL,
    redis_prefix,
    settle,
    store_config,
    wait_for_state,
    wait_until,
)

__all__ = ["redis_prefix"]


def config(url: str, tasks: dict[str, Any]) -> dict[str, Any]:
    return {"backends": [{"url": url, "name": "gpu1"}], "routing": {"retries": 0}, **tasks}


async def run_chat(client: Any, task_id: str) -> None:
    resp = await client.post(
        "/api/chat", json={"model": MODEL, "messages": []}, headers={"X-Task-Id": task_id}
    )
    assert resp.status == 200
    await resp.read()


def sqlite_rows(path: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT task_id, owner, doc FROM tasks ORDER BY created").fetchall()


# -- SQLite -----------------------------------------------------------------------------


async def test_sqlite_file_is_created_in_wal_mode_with_one_row_per_task(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    path = tmp_path / "nested" / "dir" / "tasks.db"
    client = await gateway_client(
        config(url, {"tasks": {"store": "sqlite", "sqlite_path": str(path)}})
    )
    assert path.exists()
    await run_chat(client, "row-1")
    await run_chat(client, "row-2")
    await wait_for_state(client, "row-2", "SUCCESS")
    await settle(client)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = sqlite_rows(path)
    assert [(r[0], r[1]) for r in rows] == [("row-1", "anonymous"), ("row-2", "anonymous")]
    assert json.loads(rows[1][2])["state"] == "SUCCESS"


async def test_sqlite_expired_task_vanishes_and_is_swept_from_the_file(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    path = tmp_path / "tasks.db"
    client = await gateway_client(
        config(
            url,
            {
                "tasks": {
                    "store": "sqlite",
                    "sqlite_path": str(path),
                    "ttl_done_s": 0.3,
                    "sweep_interval_s": 0.05,
                }
            },
        )
    )
    await run_chat(client, "short-1")
    await wait_for_state(client, "short-1", "SUCCESS")

    async def gone() -> bool:
        return (await client.get("/tasks/status/short-1")).status == 404

    await wait_until(gone)
    await wait_until(lambda: sqlite_rows(path) == [])


async def test_running_task_uses_running_ttl_and_end_state_uses_done_ttl(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"
    path = tmp_path / "tasks.db"
    client = await gateway_client(
        config(
            url,
            {
                "tasks": {
                    "store": "sqlite",
                    "sqlite_path": str(path),
                    "ttl_running_s": 1000,
                    "ttl_done_s": 10,
                }
            },
        )
    )
    resp = await client.post(
        "/api/chat", json={"model": MODEL, "messages": []}, headers={"X-Task-Id": "ttl-1"}
    )
    await resp.content.readline()
    await wait_for_state(client, "ttl-1", "RUNNING")
    await settle(client)

    def ttl_left() -> float:
        with sqlite3.connect(path) as db:
            return float(
                db.execute(
                    "SELECT expires_at - created FROM tasks WHERE task_id = 'ttl-1'"
                ).fetchone()[0]
            )

    assert ttl_left() > 500
    fake.release.set()
    await resp.read()
    await wait_for_state(client, "ttl-1", "SUCCESS")
    await settle(client)
    assert ttl_left() < 50


# -- Redis ------------------------------------------------------------------------------


async def test_redis_holds_the_document_under_ts_ollama_key_with_ttl(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path, redis_prefix: str, redis_url: str
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(
        config(url, store_config("redis", tmp_path, redis_prefix, ttl_done_s=120))
    )
    await run_chat(client, "key-1")
    await wait_for_state(client, "key-1", "SUCCESS")
    await settle(client)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        doc = json.loads(await redis.get(f"{redis_prefix}key-1"))
        ttl_ms = await redis.pttl(f"{redis_prefix}key-1")
    finally:
        await redis.aclose()
    assert (doc["task_id"], doc["state"], doc["stage"]) == ("key-1", "SUCCESS", "completed")
    assert 0 < ttl_ms <= 120_000


async def test_default_redis_prefix_is_ts_ollama(
    gateway_client: Any, fake_ollama: Any, redis_url: str
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(
        config(url, {"tasks": {"store": "redis", "redis_url": redis_url}})
    )
    store = gateway_of(client).app[TRACKER].store  # type: ignore[index]
    assert store.doc_key("demo-001") == "ts:ollama:demo-001"


async def test_redis_expired_task_disappears(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path, redis_prefix: str, redis_url: str
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(
        config(url, store_config("redis", tmp_path, redis_prefix, ttl_done_s=0.3))
    )
    await run_chat(client, "exp-1")
    await wait_for_state(client, "exp-1", "SUCCESS")
    await settle(client)
    redis = aioredis.Redis.from_url(redis_url)
    try:
        await wait_until(lambda: redis.exists(f"{redis_prefix}exp-1"), timeout_s=1)
        await wait_until(lambda: _not(redis.exists(f"{redis_prefix}exp-1")))
        await wait_until(lambda: _not(redis.exists(f"ollamux:idx:{redis_prefix}owner:exp-1")))
    finally:
        await redis.aclose()
    assert (await client.get("/tasks/status/exp-1")).status == 404
    listed = await (await client.get("/tasks/status")).json()
    assert listed == {"tasks": []}


async def _not(awaitable: Any) -> bool:
    return not await awaitable


# -- the writer -------------------------------------------------------------------------


class CountingStore(MemoryStore):
    """A memory store that remembers every record written."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[TaskRecord] = []

    async def put_many(self, records: list[TaskRecord]) -> None:
        self.records.extend(records)
        await super().put_many(records)


async def test_long_stream_costs_a_write_per_state_change_not_per_chunk(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "split"  # every word in two writes
    fake.words = [f" w{i}" for i in range(100)]
    client = await gateway_client(config(url, {}))
    tracker = gateway_of(client).app[TRACKER]  # type: ignore[index]
    store = CountingStore()
    tracker.store = tracker.writer.store = store
    await run_chat(client, "many-chunks")
    doc = await wait_for_state(client, "many-chunks", "SUCCESS")
    assert doc["extensions"]["chunks"] >= 50
    await settle(client)
    written = [r.state for r in store.records if r.task_id == "many-chunks"]
    assert 1 <= len(written) <= 4  # PENDING, RUNNING (forwarded, streaming), SUCCESS at most
    assert written[-1] == "SUCCESS"
