"""The in-memory store: for tests and throwaway runs; gone when the process ends."""

from __future__ import annotations

import time
from typing import Any

from .store import TaskRecord, TaskStore


class MemoryStore(TaskStore):
    def __init__(self) -> None:
        self._tasks: dict[str, TaskRecord] = {}

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def put_many(self, records: list[TaskRecord]) -> None:
        now = time.time()
        for record in records:
            old = self._tasks.get(record.task_id)
            if old is not None and old.owner != record.owner and old.expires_at > now:
                continue
            self._tasks[record.task_id] = record

    async def get(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        record = self._tasks.get(task_id)
        if record is None or record.expires_at <= time.time():
            return None
        return record.owner, record.doc

    async def recent(
        self, owner: str | None, state: str | None, limit: int
    ) -> list[dict[str, Any]]:
        now = time.time()
        live = [
            r
            for r in self._tasks.values()
            if r.expires_at > now
            and (owner is None or r.owner == owner)
            and (state is None or r.state == state)
        ]
        live.sort(key=lambda r: r.created, reverse=True)
        return [r.doc for r in live[:limit]]

    async def sweep(self, now: float) -> int:
        gone = [k for k, r in self._tasks.items() if r.expires_at <= now]
        for key in gone:
            del self._tasks[key]
        return len(gone)
