"""The SQLite store (the default): one row per task in a WAL-mode database file.

Expired rows are invisible to reads at once and deleted by the periodic sweep. Several
ollamux processes may share the file (WAL plus a busy timeout lets them take turns).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiosqlite

from ...sqlite_setup import setup_lock
from .store import TaskRecord, TaskStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id    TEXT PRIMARY KEY,
    owner      TEXT NOT NULL,
    state      TEXT NOT NULL,
    created    REAL NOT NULL,
    expires_at REAL NOT NULL,
    doc        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_created ON tasks (created);
CREATE INDEX IF NOT EXISTS tasks_owner_created ON tasks (owner, created);
CREATE INDEX IF NOT EXISTS tasks_expires ON tasks (expires_at);
"""

# Another key's live task is never overwritten (the WHERE of the upsert).
# A batch is written with multi-row upserts: ``INSERT ... VALUES (...), (...), ...`` of 2**k
# rows each (120 rows: 64 + 32 + 16 + 8), so that a handful of prepared statements (the
# connection's statement cache keeps them) serves every batch size. Each statement is one
# step in SQLite, so the worker thread gives up and retakes the GIL once per statement,
# not once per row as ``executemany`` does (each retake waits for the busy event loop).
_MAX_ROWS = 256
_COLUMNS = 6


def _upsert_rows(count: int) -> str:
    """The upsert of ``count`` rows; parameter 1 is the time, then six per row."""
    rows = ",".join(
        "(" + ",".join(f"?{2 + i * _COLUMNS + c}" for c in range(_COLUMNS)) + ")"
        for i in range(count)
    )
    return _UPSERT_HEAD + rows + _UPSERT_TAIL.replace("?", "?1")


_UPSERT_HEAD = "INSERT INTO tasks (task_id, owner, state, created, expires_at, doc) VALUES "
_UPSERT_TAIL = """
ON CONFLICT (task_id) DO UPDATE SET
    owner = excluded.owner, state = excluded.state, created = excluded.created,
    expires_at = excluded.expires_at, doc = excluded.doc
WHERE tasks.owner = excluded.owner OR tasks.expires_at <= ?
"""
_UPSERTS = {1 << k: _upsert_rows(1 << k) for k in range(_MAX_ROWS.bit_length())}


def _chunks(count: int) -> list[int]:
    """``count`` as the sizes of the statements that write it, largest first."""
    sizes = []
    while count:
        size = min(_MAX_ROWS, 1 << (count.bit_length() - 1))
        sizes.append(size)
        count -= size
    return sizes


def _prepare(path: Path) -> None:
    """WAL mode and the table, one process at a time (see ``ollamux.sqlite_setup``)."""
    with setup_lock(path), contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(_SCHEMA)
        db.commit()


class SqliteStore(TaskStore):
    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise ConnectionError("the task database is closed")
        return self._db

    async def open(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(_prepare, self.path)
        db = await aiosqlite.connect(self.path)
        try:
            await db.execute("PRAGMA busy_timeout = 5000")
            await db.execute("PRAGMA synchronous = NORMAL")
        except BaseException:
            await db.close()
            raise
        self._db = db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def put_many(self, records: list[TaskRecord]) -> None:
        db = self.db
        now = time.time()
        done = 0
        for size in _chunks(len(records)):
            params: list[Any] = [now]
            for r in records[done : done + size]:
                params += (r.task_id, r.owner, r.state, r.created, r.expires_at, r.text)
            done += size
            await db.execute(_UPSERTS[size], params)
        await db.commit()

    async def get(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        async with self.db.execute(
            "SELECT owner, doc FROM tasks WHERE task_id = ? AND expires_at > ?",
            (task_id, time.time()),
        ) as cursor:
            row = await cursor.fetchone()
        if row is None:
            return None
        return str(row[0]), json.loads(row[1])

    async def recent(
        self, owner: str | None, state: str | None, limit: int
    ) -> list[dict[str, Any]]:
        sql = "SELECT doc FROM tasks WHERE expires_at > ?"
        args: list[Any] = [time.time()]
        if owner is not None:
            sql += " AND owner = ?"
            args.append(owner)
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        sql += " ORDER BY created DESC LIMIT ?"
        args.append(limit)
        async with self.db.execute(sql, args) as cursor:
            rows = await cursor.fetchall()
        return [json.loads(row[0]) for row in rows]

    async def sweep(self, now: float) -> int:
        cursor = await self.db.execute("DELETE FROM tasks WHERE expires_at <= ?", (now,))
        await self.db.commit()
        return cursor.rowcount
