"""The background writer's batches: which filed tasks a batch writes, and when."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

from ollamux.exchange import Exchange
from ollamux.plugins.tasks.memory_store import MemoryStore
from ollamux.plugins.tasks.store import TaskRecord
from ollamux.plugins.tasks.writer import TaskWriter


class Live:
    """Stands for a request in flight: what the writer reads of it."""

    def __init__(self, task_id: str, started_at: float) -> None:
        self.task_id = task_id
        self.started_at = started_at


def running(live: Exchange) -> TaskRecord:
    return TaskRecord(live.task_id, "me", "RUNNING", 0.0, time.time() + 60, doc={})


def ended(task_id: str) -> TaskRecord:
    return TaskRecord(task_id, "me", "SUCCESS", 0.0, time.time() + 60, doc={})


class Batches(MemoryStore):
    """Remembers each batch; the first one waits for ``release`` before it is written."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[tuple[str, str]]] = []
        self.first_taken = asyncio.Event()
        self.release = asyncio.Event()

    async def put_many(self, records: list[TaskRecord]) -> None:
        self.batches.append([(r.task_id, r.state) for r in records])
        if len(self.batches) == 1:
            self.first_taken.set()
            await self.release.wait()
        await super().put_many(records)


def filed(task_id: str, started_at: float) -> Exchange:
    return cast(Exchange, Live(task_id, started_at))


class Clock:
    """The writer's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_request_begun_within_a_linger_is_left_for_the_next_batch() -> None:
    store = Batches()
    writer = TaskWriter(store, running, linger_s=0.01)
    writer.clock = clock = Clock()
    writer.start()
    try:
        writer.put("old", filed("old", clock.now - 60))
        writer.put("young", filed("young", clock.now))  # as the first batch is taken
        writer.put("done", ended("done"))
        await store.first_taken.wait()
        clock.now += 1  # the next batch: it has run for a while
        store.release.set()
        await writer.flush()
    finally:
        await writer.stop()
    assert store.batches == [[("old", "RUNNING"), ("done", "SUCCESS")], [("young", "RUNNING")]]


async def test_a_young_request_that_ends_before_the_next_batch_is_written_once() -> None:
    store = Batches()
    writer = TaskWriter(store, running, linger_s=0.01)
    writer.clock = clock = Clock()
    writer.start()
    try:
        writer.put("old", filed("old", clock.now - 60))
        writer.put("young", filed("young", clock.now))
        await store.first_taken.wait()
        writer.put("young", ended("young"))  # ends while the first batch is written
        store.release.set()
        await writer.flush()
    finally:
        await writer.stop()
    assert store.batches == [[("old", "RUNNING")], [("young", "SUCCESS")]]


async def test_stopping_writes_young_requests_too() -> None:
    store = MemoryStore()
    writer = TaskWriter(store, running, linger_s=60)
    writer.start()
    writer.put("young", filed("young", time.monotonic()))
    await writer.stop()
    found: Any = await store.get("young")
    assert found == ("me", {})
