"""Jobs in a SQLite file: WAL, ``synchronous=FULL``, writes grouped into shared commits.

A commit with ``synchronous=FULL`` waits for the disk (milliseconds), so writes from
concurrent callers are queued and applied together in one transaction (group commit):
each caller resumes only after the commit holding its change is durable. A whole
transaction runs in one call on the writer's own thread (one thread hop per commit, not
per statement). Reads go through aiosqlite on a second connection (WAL lets it read while
the writer writes) and never see uncommitted changes.

Each claim records its claimer (``claimer.py``) and a lease expiry (``lease_until``), which
the worker renews while the job runs. ``recover``, run at start and every second by every
process sharing the file, hands back the ``processing`` jobs whose lease expired, whatever
their claimer's pid says (other containers, other PID namespaces, a restarted gateway with
another pid); a job whose lease is alive stays with its claimer, unless that claimer is
certainly gone (same machine, same PID namespace, process ended): then at once.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

from ...sqlite_setup import setup_lock
from .claimer import certainly_gone, this_process
from .model import Job, JobStatus
from .store import JobStore, Page, StoreUnavailable

_Op = Callable[[sqlite3.Connection], Any]  # one write, run on the writer's thread
_Outcome = tuple[Any, BaseException | None]

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
    token TEXT NOT NULL DEFAULT '',
    claimer TEXT NOT NULL DEFAULT '',
    lease_until REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, priority DESC, seq);
CREATE INDEX IF NOT EXISTS jobs_status_seq ON jobs (status, seq);
CREATE INDEX IF NOT EXISTS jobs_owner ON jobs (owner, seq);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;
"""

# Files made before leases existed lack the column (their claims count as expired).
_MIGRATE = "ALTER TABLE jobs ADD COLUMN lease_until REAL"

# A claim is over when its lease expired or its claimer is certainly gone.
_OVER = "status='processing' AND (lease_until IS NULL OR lease_until<? OR claimer IN ({}))"

_COLUMNS = (
    "id, kind, owner, path, body, priority, status, created_at, updated_at, started_at, "
    "finished_at, attempts, backend, error, result, token"
)

_INSERT = (
    "INSERT INTO jobs (id, kind, owner, path, body, priority, status, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        self._writer: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[tuple[_Op, asyncio.Future[Any]]] = []
        self._inserts: list[tuple[tuple[Any, ...], int, asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.claimer = str(this_process())

    # -- connections ---------------------------------------------------------------------

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="ollamux-jobs-sqlite")
        self._writer = await self._in_thread(self._connect_writer)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        await self._reader.execute("PRAGMA busy_timeout=5000")

    def _connect_writer(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            with setup_lock(self.path):  # sibling workers open the same file at once
                db.execute("PRAGMA busy_timeout=5000")
                db.execute("PRAGMA journal_mode=WAL")
                columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
                if columns and "lease_until" not in columns:
                    db.execute(_MIGRATE)
                db.executescript(_SCHEMA)
            db.execute("PRAGMA synchronous=FULL")
        except BaseException:
            db.close()
            raise
        return db

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)
        if self._writer is not None:
            await self._in_thread(self._writer.close)
        if self._reader is not None:
            await self._reader.close()
        if self._thread is not None:
            self._thread.shutdown()
        self._writer = self._reader = self._thread = None

    async def _in_thread(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn)

    @property
    def _read(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreUnavailable("job store is not open")
        return self._reader

    # -- grouped writes --------------------------------------------------------------------

    async def _write(self, op: _Op) -> Any:
        """Run ``op`` inside the next shared transaction; return once it is committed."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((op, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending or self._inserts:
            ops, self._pending = self._pending, []
            inserts, self._inserts = self._inserts, []
            futures = [f for _, _, f in inserts] + [f for _, f in ops]
            try:
                work = partial(
                    self._transaction,
                    [(row, limit) for row, limit, _ in inserts],
                    [op for op, _ in ops],
                )
                outcomes: list[_Outcome] = await self._in_thread(work)
            except Exception as exc:
                outcomes = [(None, exc)] * len(futures)
            for future, (value, error) in zip(futures, outcomes, strict=True):
                if future.done():
                    continue
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)

    def _transaction(
        self, inserts: list[tuple[tuple[Any, ...], int]], ops: list[_Op]
    ) -> list[_Outcome]:
        """One transaction on the writer's thread: new jobs (while the backlog has room),
        then the other writes. One failing write fails alone (statements are atomic)."""
        db = self._writer
        if db is None:
            raise StoreUnavailable("job store is not open")
        db.execute("BEGIN IMMEDIATE")
        try:
            # Counted under the write lock: exact even with other processes on the file.
            queued = db.execute("SELECT COUNT(*) FROM jobs WHERE status='queued'").fetchone()[0]
            outcomes: list[_Outcome] = []
            accepted = []
            for row, max_queued in inserts:
                room = queued < max_queued
                if room:
                    accepted.append(row)
                    queued += 1
                outcomes.append((room, None))
            if accepted:
                db.executemany(_INSERT, accepted)
            for op in ops:
                try:
                    outcomes.append((op(db), None))
                except Exception as exc:
                    if not db.in_transaction:  # SQLite rolled the whole transaction back
                        raise
                    outcomes.append((None, exc))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return outcomes

    # -- the contract ------------------------------------------------------------------------

    async def recover(self, max_attempts: int) -> int:
        # Read first (cheap, no lock): most of the time there is nothing to hand back.
        now = time.time()
        async with self._read.execute(
            "SELECT claimer, lease_until FROM jobs WHERE status='processing'"
        ) as cur:
            claims = await cur.fetchall()
        gone = sorted({c for c, _ in claims if c != self.claimer and certainly_gone(c)})
        if not any(c in gone or lease is None or lease < now for c, lease in claims):
            return 0

        def op(db: sqlite3.Connection) -> int:
            over = _OVER.format(", ".join("?" * len(gone)))
            failed = db.execute(
                "UPDATE jobs SET status='failed', finished_at=?, updated_at=?, token='', "
                "error='interrupted ' || attempts || ' times (its claim lapsed: the gateway "
                f"stopped or lost the store while it ran)' WHERE attempts>=? AND {over}",
                (now, now, max_attempts, now, *gone),
            )
            requeued = db.execute(
                f"UPDATE jobs SET status='queued', updated_at=?, token='' WHERE {over}",
                (now, now, *gone),
            )
            return failed.rowcount + requeued.rowcount

        return int(await self._write(op))

    async def submit(self, job: Job, max_queued: int) -> bool:
        row = (
            job.id,
            job.kind,
            job.owner,
            job.path,
            json.dumps(job.body),
            job.priority,
            str(job.status),
            job.created_at,
            job.updated_at,
        )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inserts.append((row, max_queued, future))
        self._kick()
        return bool(await future)

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
        def op(db: sqlite3.Connection) -> Job | None:
            now = time.time()
            row = db.execute(
                "UPDATE jobs SET status='processing', attempts=attempts+1, token=?, claimer=?, "
                "lease_until=?, updated_at=?, started_at=? WHERE seq=(SELECT seq FROM jobs "
                "WHERE status='queued' ORDER BY priority DESC, seq LIMIT 1) "
                f"RETURNING {_COLUMNS}",
                (token, self.claimer, now + lease_s, now, now),
            ).fetchone()
            return None if row is None else _row_to_job(row)

        job: Job | None = await self._write(op)
        return job

    async def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET lease_until=? WHERE id=? AND status='processing' AND token=?",
                (time.time() + lease_s, job_id, token),
            )
            return cursor.rowcount == 1

        return bool(await self._write(op))

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
        def op(db: sqlite3.Connection) -> bool:
            now = time.time()
            cursor = db.execute(
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
        def op(db: sqlite3.Connection) -> bool:
            cursor = db.execute(
                "UPDATE jobs SET status='queued', token='', error=?, updated_at=?, "
                "attempts=attempts-? WHERE id=? AND status='processing' AND token=?",
                (error, time.time(), 0 if keep_attempt else 1, job_id, token),
            )
            return cursor.rowcount == 1

        return bool(await self._write(op))

    async def cancel(self, job_id: str) -> Job | None:
        def op(db: sqlite3.Connection) -> Job | None:
            row = db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                return None
            before = _row_to_job(row)
            if not before.status.terminal:
                now = time.time()
                db.execute(
                    "UPDATE jobs SET status='cancelled', token='', finished_at=?, updated_at=?, "
                    "error='cancelled' WHERE id=?",
                    (now, now, job_id),
                )
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

    async def stuck(self, started_before: float, limit: int) -> builtins.list[Job]:
        async with self._read.execute(
            f"SELECT {_COLUMNS} FROM jobs WHERE status='processing' AND started_at<? "
            "ORDER BY started_at LIMIT ?",
            (started_before, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [_row_to_job(r) for r in rows]

    async def expire(self, finished_before: float) -> int:
        batch = 1000

        def op(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE finished_at<? "
                "AND status IN ('completed', 'failed', 'cancelled') LIMIT ?)",
                (finished_before, batch),
            )
            return cursor.rowcount

        total = 0
        while True:  # in batches: one short write lock each
            deleted = int(await self._write(op))
            total += deleted
            if deleted < batch:
                return total
