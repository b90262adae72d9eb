"""Jobs in a SQLite file: WAL, ``synchronous=FULL``, writes grouped into shared commits.

A commit with ``synchronous=FULL`` waits for the disk (milliseconds), so writes from
concurrent callers are queued and applied together in one transaction: each caller
resumes only after the commit holding its change is durable. Reads use a second
connection (WAL lets it read while the writer writes) and never see uncommitted changes.

One gateway process per file: ``recover`` at start hands back every ``processing`` job.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from .model import Job, JobStatus
from .store import JobStore, Page

T = TypeVar("T")
_Op = Callable[[aiosqlite.Connection], Awaitable[Any]]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    path TEXT NOT NULL,
    body TEXT NOT NULL,
    priority INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    backend TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    result TEXT,
    token TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, priority DESC, seq);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, seq);
"""

_COLUMNS = (
    "id, kind, owner, path, body, priority, status, created_at, updated_at, started_at, "
    "finished_at, attempts, backend, error, result, token"
)


def _row_to_job(row: Any) -> Job:
    return Job(
        id=row[0],
        kind=row[1],
        owner=row[2],
        path=row[3],
        body=json.loads(row[4]),
        priority=row[5],
        status=JobStatus(row[6]),
        created_at=row[7],
        updated_at=row[8],
        started_at=row[9],
        finished_at=row[10],
        attempts=row[11],
        backend=row[12],
        error=row[13],
        result=None if row[14] is None else json.loads(row[14]),
        token=row[15],
    )


class SqliteJobStore(JobStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[tuple[_Op, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._queued = 0  # exact: this process is the file's only writer

    # -- connections ---------------------------------------------------------------------

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        await self._writer.execute("PRAGMA journal_mode=WAL")
        await self._writer.execute("PRAGMA synchronous=FULL")
        await self._writer.execute("PRAGMA busy_timeout=5000")
        await self._writer.executescript(_SCHEMA)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout=5000")
        self._queued = (await self.counts()).get(JobStatus.QUEUED, 0)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        for conn in (self._writer, self._reader):
            if conn is not None:
                await conn.close()
        self._writer = self._reader = None

    @property
    def _read(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise RuntimeError("job store is not open")
        return self._reader

    # -- grouped writes --------------------------------------------------------------------

    async def _write(self, op: _Op) -> Any:
        """Run ``op`` inside the next shared transaction; return once it is committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        db = self._writer
        if db is None:
            raise RuntimeError("job store is not open")
        while self._pending:
            batch, self._pending = self._pending, []
            outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            try:
                await db.execute("BEGIN IMMEDIATE")
                for op, future in batch:
                    try:
                        outcomes.append((future, await op(db), None))
                    except Exception as exc:  # one bad op fails alone (statements are atomic)
                        outcomes.append((future, None, exc))
                await db.commit()
            except Exception as exc:
                await _rollback(db)
                outcomes = [(future, None, exc) for _, future in batch]
                self._queued = await _count_queued(db)
            for future, value, error in outcomes:
                if future.done():
                    continue
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)

    # -- the contract ------------------------------------------------------------------------

    async def recover(self, max_attempts: int) -> int:
        async def op(db: aiosqlite.Connection) -> int:
            now = time.time()
            failed = await db.execute(
                "UPDATE jobs SET status='failed', finished_at=?, updated_at=?, token='', "
                "error='interrupted ' || attempts || ' times (the gateway stopped while it ran)' "
                "WHERE status='processing' AND attempts>=?",
                (now, now, max_attempts),
            )
            requeued = await db.execute(
                "UPDATE jobs SET status='queued', updated_at=?, token='' WHERE status='processing'",
                (now,),
            )
            return failed.rowcount + requeued.rowcount

        touched = int(await self._write(op))
        self._queued = (await self.counts())[JobStatus.QUEUED]
        return touched

    async def submit(self, job: Job, max_queued: int) -> bool:
        async def op(db: aiosqlite.Connection) -> bool:
            if self._queued >= max_queued:
                return False
            await db.execute(
                f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 16)})",
                (
                    job.id,
                    job.kind,
                    job.owner,
                    job.path,
                    json.dumps(job.body),
                    job.priority,
                    str(job.status),
                    job.created_at,
                    job.updated_at,
                    None,
                    None,
                    0,
                    "",
                    "",
                    None,
                    "",
                ),
            )
            self._queued += 1
            return True

        return bool(await self._write(op))

    async def get(self, job_id: str) -> Job | None:
        async with self._read.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)) as cur:
            row = await cur.fetchone()
        return None if row is None else _row_to_job(row)

    async def list(
        self, *, owner: str | None, status: JobStatus | None, offset: int, limit: int
    ) -> Page:
        where, args = [], []
        if owner is not None:
            where.append("owner=?")
            args.append(owner)
        if status is not None:
            where.append("status=?")
            args.append(str(status))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        async with self._read.execute(f"SELECT COUNT(*) FROM jobs {clause}", args) as cur:
            total_row = await cur.fetchone()
        async with self._read.execute(
            f"SELECT {_COLUMNS} FROM jobs {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        ) as cur:
            rows = await cur.fetchall()
        return Page([_row_to_job(r) for r in rows], int(total_row[0]) if total_row else 0)

    async def claim(self, token: str, lease_s: float) -> Job | None:
        async def op(db: aiosqlite.Connection) -> Job | None:
            now = time.time()
            async with db.execute(
                "UPDATE jobs SET status='processing', attempts=attempts+1, token=?, "
                "updated_at=?, started_at=? WHERE seq=(SELECT seq FROM jobs "
                "WHERE status='queued' ORDER BY priority DESC, seq LIMIT 1) "
                f"RETURNING {_COLUMNS}",
                (token, now, now),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            self._queued -= 1
            return _row_to_job(row)

        job: Job | None = await self._write(op)
        return job

    async def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        async with self._read.execute(
            "SELECT 1 FROM jobs WHERE id=? AND status='processing' AND token=?", (job_id, token)
        ) as cur:
            return await cur.fetchone() is not None

    async def finish(
        self,
        job_id: str,
        token: str,
        status: JobStatus,
        *,
        result: object = None,
        error: str = "",
        backend: str = "",
    ) -> bool:
        async def op(db: aiosqlite.Connection) -> bool:
            now = time.time()
            cursor = await db.execute(
                "UPDATE jobs SET status=?, result=?, error=?, backend=?, finished_at=?, "
                "updated_at=?, token='' WHERE id=? AND status='processing' AND token=?",
                (
                    str(status),
                    None if result is None else json.dumps(result),
                    error,
                    backend,
                    now,
                    now,
                    job_id,
                    token,
                ),
            )
            return cursor.rowcount == 1

        return bool(await self._write(op))

    async def release(
        self, job_id: str, token: str, *, keep_attempt: bool, error: str = ""
    ) -> bool:
        async def op(db: aiosqlite.Connection) -> bool:
            cursor = await db.execute(
                "UPDATE jobs SET status='queued', token='', error=?, updated_at=?, "
                "attempts=attempts-? WHERE id=? AND status='processing' AND token=?",
                (error, time.time(), 0 if keep_attempt else 1, job_id, token),
            )
            if cursor.rowcount != 1:
                return False
            self._queued += 1
            return True

        return bool(await self._write(op))

    async def cancel(self, job_id: str) -> Job | None:
        async def op(db: aiosqlite.Connection) -> Job | None:
            async with db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            before = _row_to_job(row)
            if not before.status.terminal:
                now = time.time()
                await db.execute(
                    "UPDATE jobs SET status='cancelled', token='', finished_at=?, updated_at=?, "
                    "error='cancelled' WHERE id=?",
                    (now, now, job_id),
                )
                if before.status is JobStatus.QUEUED:
                    self._queued -= 1
            return before

        job: Job | None = await self._write(op)
        return job

    async def counts(self) -> dict[JobStatus, int]:
        async with self._read.execute(
            "SELECT status, COUNT(*) FROM jobs WHERE status IN ('queued', 'processing') "
            "GROUP BY status"
        ) as cur:
            rows = await cur.fetchall()
        found = {JobStatus(status): int(n) for status, n in rows}
        return {
            JobStatus.QUEUED: found.get(JobStatus.QUEUED, 0),
            JobStatus.PROCESSING: found.get(JobStatus.PROCESSING, 0),
        }


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.rollback()
    except Exception:  # nothing to roll back: the failure was BEGIN itself
        return


async def _count_queued(db: aiosqlite.Connection) -> int:
    async with db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0
