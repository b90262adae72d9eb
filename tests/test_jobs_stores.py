"""The store contract, for both stores: a real SQLite file and the real Redis."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ollamux.plugins.jobs.model import Job, JobStatus
from ollamux.plugins.jobs.redis_store import RedisJobStore
from ollamux.plugins.jobs.sqlite_store import SqliteJobStore
from ollamux.plugins.jobs.store import JobStore
from tests.jobs_support import eventually
from tests.redis_server import redis_url


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobStore]:
    made: JobStore
    if request.param == "sqlite":
        made = SqliteJobStore(str(tmp_path / "jobs.db"))
    else:
        made = RedisJobStore(redis_url(), f"test-jobs-{uuid.uuid4().hex}:")
    await made.open()
    yield made
    if isinstance(made, RedisJobStore):
        await made.delete_all()
    await made.close()


def _finished_process() -> subprocess.Popen[bytes]:
    """A process that ran and was reaped: its pid no longer runs."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc


def _job(prompt: str = "x", priority: int = 0, owner: str = "anonymous") -> Job:
    return Job(
        path="/api/generate", body={"model": "m", "prompt": prompt}, priority=priority, owner=owner
    )


async def test_claim_takes_higher_priority_first_then_oldest(store: JobStore) -> None:
    for name, priority in [("a", 0), ("b", 3), ("c", 0), ("d", 3), ("e", -1)]:
        assert await store.submit(_job(name, priority), 100)
    order = []
    while (job := await store.claim(uuid.uuid4().hex, 60)) is not None:
        order.append(job.body["prompt"])
    assert order == ["b", "d", "a", "c", "e"]


async def test_concurrent_claims_never_share_a_job(store: JobStore) -> None:
    for i in range(40):
        await store.submit(_job(str(i)), 1000)

    async def worker() -> list[str]:
        got = []
        while (job := await store.claim(uuid.uuid4().hex, 60)) is not None:
            got.append(job.id)
        return got

    results = await asyncio.gather(*(worker() for _ in range(8)))
    claimed = [j for r in results for j in r]
    assert len(claimed) == 40 == len(set(claimed))


async def test_result_is_recorded_once_per_claim(store: JobStore) -> None:
    await store.submit(_job(), 10)
    job = await store.claim("t1", 60)
    assert job is not None and job.attempts == 1 and job.status is JobStatus.PROCESSING
    assert await store.finish(job.id, "t1", JobStatus.COMPLETED, result={"r": 1}, backend="b1")
    assert not await store.finish(job.id, "t1", JobStatus.COMPLETED, result={"r": 2})
    assert not await store.finish(job.id, "other", JobStatus.FAILED, error="x")
    stored = await store.get(job.id)
    assert stored is not None
    assert (stored.status, stored.result, stored.backend) == (JobStatus.COMPLETED, {"r": 1}, "b1")


async def test_backlog_limit_refuses_beyond_max_queued(store: JobStore) -> None:
    assert await store.submit(_job(), 2)
    assert await store.submit(_job(), 2)
    assert not await store.submit(_job(), 2)
    assert (await store.counts())[JobStatus.QUEUED] == 2
    assert (await store.list(owner=None, status=None, offset=0, limit=10)).total == 2


async def test_release_without_counting_gives_the_attempt_back(store: JobStore) -> None:
    await store.submit(_job(), 10)
    job = await store.claim("t1", 60)
    assert job is not None
    assert await store.release(job.id, "t1", keep_attempt=False)
    again = await store.claim("t2", 60)
    assert again is not None and again.id == job.id and again.attempts == 1
    assert not await store.renew(job.id, "t1", 60)
    assert await store.renew(job.id, "t2", 60)


async def test_cancel_processing_job_invalidates_the_claim(store: JobStore) -> None:
    await store.submit(_job(), 10)
    job = await store.claim("t1", 60)
    assert job is not None
    before = await store.cancel(job.id)
    assert before is not None and before.status is JobStatus.PROCESSING
    assert not await store.renew(job.id, "t1", 60)
    assert not await store.finish(job.id, "t1", JobStatus.COMPLETED, result={})
    stored = await store.get(job.id)
    assert stored is not None and stored.status is JobStatus.CANCELLED
    assert await store.cancel("missing") is None


async def test_list_filters_by_owner_and_status(store: JobStore) -> None:
    await store.submit(_job(owner="alice"), 10)
    await store.submit(_job(owner="bob"), 10)
    await store.submit(_job(owner="alice"), 10)
    claimed = await store.claim("t", 60)  # alice's first job
    assert claimed is not None
    alice = await store.list(owner="alice", status=None, offset=0, limit=10)
    assert alice.total == 2 and {j.owner for j in alice.jobs} == {"alice"}
    running = await store.list(owner="alice", status=JobStatus.PROCESSING, offset=0, limit=10)
    assert [j.id for j in running.jobs] == [claimed.id]
    everyone_queued = await store.list(owner=None, status=JobStatus.QUEUED, offset=0, limit=10)
    assert everyone_queued.total == 2


async def test_sqlite_recover_requeues_running_jobs_and_fails_exhausted_ones(
    tmp_path: Path,
) -> None:
    store = SqliteJobStore(str(tmp_path / "jobs.db"))
    await store.open()
    await store.submit(_job("first"), 10)
    await store.submit(_job("second"), 10)
    first = await store.claim("t1", 60)
    assert first is not None
    assert await store.release(first.id, "t1", keep_attempt=True)
    first = await store.claim("t2", 60)  # attempt 2
    second = await store.claim("t3", 60)  # attempt 1
    assert first is not None and second is not None
    await store.close()

    reopened = SqliteJobStore(str(tmp_path / "jobs.db"))
    await reopened.open()
    assert await reopened.recover(max_attempts=2) == 2
    failed, queued = await reopened.get(first.id), await reopened.get(second.id)
    assert (
        failed is not None and failed.status is JobStatus.FAILED and "interrupted 2" in failed.error
    )
    assert queued is not None and queued.status is JobStatus.QUEUED and queued.attempts == 1
    await reopened.close()


async def test_redis_lease_expiry_hands_the_job_back() -> None:
    store = RedisJobStore(redis_url(), f"test-jobs-{uuid.uuid4().hex}:")
    await store.open()
    try:
        await store.submit(_job(), 10)
        job = await store.claim("dead-worker", lease_s=0.05)
        assert job is not None

        async def reaped() -> bool:
            await store.recover(max_attempts=3)
            found = await store.get(job.id)
            return found is not None and found.status is JobStatus.QUEUED

        await eventually(reaped)
        assert not await store.finish(job.id, "dead-worker", JobStatus.COMPLETED, result={})
        again = await store.claim("alive", 60)
        assert again is not None and again.id == job.id and again.attempts == 2
    finally:
        await store.delete_all()
        await store.close()


async def test_sqlite_recover_leaves_jobs_of_live_processes_alone(tmp_path: Path) -> None:
    store = SqliteJobStore(str(tmp_path / "jobs.db"))
    await store.open()
    try:
        await store.submit(_job("sibling's"), 10)
        await store.submit(_job("dead one's"), 10)
        sibling = await store.claim("t1", 60)
        dead = await store.claim("t2", 60)
        assert sibling is not None and dead is not None
        gone = _finished_process()
        with sqlite3.connect(tmp_path / "jobs.db") as db:
            db.execute("UPDATE jobs SET claimer=? WHERE id=?", (f"{os.getppid()}:x", sibling.id))
            db.execute("UPDATE jobs SET claimer=? WHERE id=?", (f"{gone.pid}:y", dead.id))
        assert await store.recover(max_attempts=3) == 1
        kept, back = await store.get(sibling.id), await store.get(dead.id)
        assert kept is not None and kept.status is JobStatus.PROCESSING
        assert back is not None and back.status is JobStatus.QUEUED
    finally:
        await store.close()


async def test_redis_lease_expiry_after_the_last_attempt_fails_the_job() -> None:
    store = RedisJobStore(redis_url(), f"test-jobs-{uuid.uuid4().hex}:")
    await store.open()
    try:
        await store.submit(_job(), 10)
        job = await store.claim("dead-worker", lease_s=0.01)
        assert job is not None

        async def failed() -> bool:
            await store.recover(max_attempts=1)
            found = await store.get(job.id)
            return found is not None and found.status is JobStatus.FAILED

        await eventually(failed)
        found = await store.get(job.id)
        assert found is not None and "interrupted 1 times" in found.error
        assert await store.claim("next", 60) is None
    finally:
        await store.delete_all()
        await store.close()
