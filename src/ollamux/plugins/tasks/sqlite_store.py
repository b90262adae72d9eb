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
_UPSERT = """
INSERT INTO tasks (task_id, owner, state, created, expires_at, doc) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (task_id) DO UPDATE SET
    owner = excluded.owner, state = excluded.state, created = excluded.created,
    expires_at = excluded.expires_at, doc = excluded.doc
WHERE tasks.owner = excluded.owner OR tasks.expires_at <= ?
"""

# The same upsert for a whole batch in one statement: the rows come as one JSON array of
# [task_id, owner, state, created, expires_at, doc]. ``executemany`` releases and retakes
# the GIL around every row's step, and each retake waits for the busy event loop to let
# go (two futex calls and a thread switch per row); this is one step per batch.
_UPSERT_BATCH = """
INSERT INTO tasks (task_id, owner, state, created, expires_at, doc)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]')
FROM json_each(?1) WHERE true
ON CONFLICT (task_id) DO UPDATE SET
    owner = excluded.owner, state = excluded.state, created = excluded.created,
    expires_at = excluded.expires_at, doc = excluded.doc
WHERE tasks.owner = excluded.owner OR tasks.expires_at <= ?2
"""


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
        now = time.time()
        if len(records) > 1:  # one statement, one JSON encoding for the batch
            rows = [[r.task_id, r.owner, r.state, r.created, r.expires_at, r.doc] for r in records]
            await self.db.execute(_UPSERT_BATCH, (json.dumps(rows), now))
        else:
            for r in records:
                doc = json.dumps(r.doc)
                await self.db.execute(
                    _UPSERT, (r.task_id, r.owner, r.state, r.created, r.expires_at, doc, now)
                )
        await self.db.commit()

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
