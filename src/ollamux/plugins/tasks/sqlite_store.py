"""The SQLite store (the default): one row per task in a WAL-mode database file.

Expired rows are invisible to reads at once and deleted by the periodic sweep. Several
ollamux processes may share the file (WAL plus a busy timeout lets them take turns). The
connection is used from one thread of the store's own (``SqliteStore._call``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ...sqlite_setup import setup_lock
from .store import TaskRecord, TaskStore

T = TypeVar("T")

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


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        db.close()
        raise
    return db


def _put(db: sqlite3.Connection, records: list[TaskRecord], now: float) -> None:
    """Upsert ``records`` and commit (in the store's thread)."""
    done = 0
    try:
        for size in _chunks(len(records)):
            params: list[Any] = [now]
            for r in records[done : done + size]:
                params += (r.task_id, r.owner, r.state, r.created, r.expires_at, r.text)
            done += size
            db.execute(_UPSERTS[size], params)
        db.commit()
    except BaseException:
        db.rollback()
        raise


def _get(db: sqlite3.Connection, task_id: str, now: float) -> tuple[str, str] | None:
    row = db.execute(
        "SELECT owner, doc FROM tasks WHERE task_id = ? AND expires_at > ?", (task_id, now)
    ).fetchone()
    return None if row is None else (str(row[0]), str(row[1]))


def _select(db: sqlite3.Connection, sql: str, args: list[Any]) -> list[str]:
    return [str(row[0]) for row in db.execute(sql, args).fetchall()]


def _sweep(db: sqlite3.Connection, now: float) -> int:
    try:
        removed = db.execute("DELETE FROM tasks WHERE expires_at <= ?", (now,)).rowcount
        db.commit()
    except BaseException:
        db.rollback()
        raise
    return removed


class SqliteStore(TaskStore):
    """The connection lives in one thread of its own; each operation is one call into it
    (a batch's statements and its commit together: one hand-over of the GIL per statement,
    one wake-up of the event loop per batch)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path).expanduser()
        self._db: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(connection, *args)`` in the store's thread."""
        db, thread = self._db, self._thread
        if db is None or thread is None:
            raise ConnectionError("the task database is closed")
        return await asyncio.get_running_loop().run_in_executor(thread, fn, db, *args)

    async def open(self) -> None:
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread(_prepare, self.path)
        thread = ThreadPoolExecutor(1, thread_name_prefix="ollamux-tasks-sqlite")
        try:
            self._db = await asyncio.get_running_loop().run_in_executor(thread, _connect, self.path)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        self._thread = thread

    async def close(self) -> None:
        db, thread = self._db, self._thread
        self._db = self._thread = None
        if db is not None and thread is not None:
            try:
                await asyncio.get_running_loop().run_in_executor(thread, db.close)
            finally:
                thread.shutdown(wait=False)

    async def put_many(self, records: list[TaskRecord]) -> None:
        await self._call(_put, records, time.time())

    async def get(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        row = await self._call(_get, task_id, time.time())
        return None if row is None else (row[0], json.loads(row[1]))

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
        return [json.loads(doc) for doc in await self._call(_select, sql, args)]

    async def sweep(self, now: float) -> int:
        return await self._call(_sweep, now)
