"""The store contract, for both stores: a real SQLite file and a real (private) Redis."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ollamux.plugins.jobs.claimer import Claimer, this_process
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


async def _recovered(store: JobStore, job_id: str, status: JobStatus) -> Job | None:
    await store.recover(max_attempts=3)
    found = await store.get(job_id)
    return found if found is not None and found.status is status else None


# -- leases ------------------------------------------------------------------------------------


async def test_expired_lease_hands_the_job_back_with_its_attempt_counted(store: JobStore) -> None:
    await store.submit(_job(), 10)
    job = await store.claim("dead-worker", lease_s=0.05)
    assert job is not None

    back = await eventually(lambda: _recovered(store, job.id, JobStatus.QUEUED))
    assert back.attempts == 1 and back.token == ""
    assert not await store.finish(job.id, "dead-worker", JobStatus.COMPLETED, result={})
    again = await store.claim("alive", 60)
    assert again is not None and again.id == job.id and again.attempts == 2


async def test_expired_lease_after_the_last_attempt_fails_the_job(store: JobStore) -> None:
    await store.submit(_job(), 10)
    job = await store.claim("dead-worker", lease_s=0.01)
    assert job is not None

    async def failed() -> Job | None:
        await store.recover(max_attempts=1)
        found = await store.get(job.id)
        return found if found is not None and found.status is JobStatus.FAILED else None

    found = await eventually(failed)
    assert "interrupted 1 times" in found.error and found.finished_at is not None
    assert await store.claim("next", 60) is None


async def test_a_live_lease_is_never_taken_away(store: JobStore) -> None:
    await store.submit(_job(), 10)
    job = await store.claim("worker", lease_s=60)
    assert job is not None
    assert await store.recover(max_attempts=1) == 0
    kept = await store.get(job.id)
    assert kept is not None and kept.status is JobStatus.PROCESSING
    assert await store.finish(job.id, "worker", JobStatus.COMPLETED, result={"r": 1})


async def test_renewing_extends_a_lapsed_lease_before_anyone_recovers_it(store: JobStore) -> None:
    await store.submit(_job(), 10)
    job = await store.claim("slow-renewer", lease_s=0.001)
    assert job is not None
    assert await store.renew(job.id, "slow-renewer", 60)
    assert await store.recover(max_attempts=3) == 0
    kept = await store.get(job.id)
    assert kept is not None and kept.status is JobStatus.PROCESSING


async def test_sqlite_lease_holds_against_another_process_sharing_the_file(
    tmp_path: Path,
) -> None:
    """Two gateways on one file (another container, another PID namespace): the other one
    neither takes a job with a live lease nor keeps one whose lease expired."""
    path = str(tmp_path / "jobs.db")
    mine, other = SqliteJobStore(path), SqliteJobStore(path)
    await mine.open()
    await other.open()
    try:
        await mine.submit(_job("live"), 10)
        await mine.submit(_job("lapsed"), 10)
        live = await mine.claim("t1", 60)
        lapsed = await mine.claim("t2", 0.05)
        assert live is not None and lapsed is not None
        with sqlite3.connect(path) as db:  # claimed in a PID namespace we cannot see into
            db.execute("UPDATE jobs SET claimer='1:99:pid:[1]:other-boot:x'")

        back = await eventually(lambda: _recovered(other, lapsed.id, JobStatus.QUEUED))
        assert back.attempts == 1
        kept = await other.get(live.id)
        assert kept is not None and kept.status is JobStatus.PROCESSING
    finally:
        await mine.close()
        await other.close()


async def test_sqlite_job_of_a_process_certainly_gone_comes_back_at_once(tmp_path: Path) -> None:
    """Same machine, same PID namespace, the claimer's process ended: no need to wait for
    its lease. A live process's job stays, whatever its pid."""
    path = str(tmp_path / "jobs.db")
    store = SqliteJobStore(path)
    await store.open()
    try:
        await store.submit(_job("sibling's"), 10)
        await store.submit(_job("dead one's"), 10)
        sibling = await store.claim("t1", 60)
        dead = await store.claim("t2", 60)
        assert sibling is not None and dead is not None
        live_proc = await asyncio.create_subprocess_exec("sleep", "60")
        gone_proc = await asyncio.create_subprocess_exec("sleep", "60")
        try:
            gone_claimer = str(claimer_of(gone_proc.pid))
            gone_proc.kill()
            await gone_proc.wait()
            with sqlite3.connect(path) as db:
                db.execute(
                    "UPDATE jobs SET claimer=? WHERE id=?",
                    (str(claimer_of(live_proc.pid)), sibling.id),
                )
                db.execute("UPDATE jobs SET claimer=? WHERE id=?", (gone_claimer, dead.id))
            assert await store.recover(max_attempts=3) == 1
        finally:
            live_proc.kill()
            await live_proc.wait()
        kept, back = await store.get(sibling.id), await store.get(dead.id)
        assert kept is not None and kept.status is JobStatus.PROCESSING
        assert back is not None and back.status is JobStatus.QUEUED and back.attempts == 1
    finally:
        await store.close()


async def test_sqlite_file_from_before_leases_is_upgraded(tmp_path: Path) -> None:
    """A file written before leases existed opens; its running jobs (no lease) come back."""
    path = tmp_path / "jobs.db"
    store = SqliteJobStore(str(path))
    await store.open()
    await store.submit(_job(), 10)
    job = await store.claim("old", 60)
    assert job is not None
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE jobs DROP COLUMN lease_until")
        db.execute("UPDATE jobs SET claimer='4242:old-format'")

    reopened = SqliteJobStore(str(path))
    await reopened.open()
    try:
        assert await reopened.recover(max_attempts=3) == 1
        back = await reopened.get(job.id)
        assert back is not None and back.status is JobStatus.QUEUED
    finally:
        await reopened.close()


# -- the sweep's questions -----------------------------------------------------------------------


async def test_stuck_lists_jobs_processing_since_before_a_time(store: JobStore) -> None:
    await store.submit(_job("running"), 10)
    await store.submit(_job("waiting"), 10)
    running = await store.claim("t", 60)
    assert running is not None and running.started_at is not None
    found = await store.stuck(running.started_at + 1, 10)
    assert [j.id for j in found] == [running.id]
    assert await store.stuck(running.started_at - 1, 10) == []


async def test_expire_deletes_only_jobs_that_ended_before_the_cutoff(store: JobStore) -> None:
    for name in ("done", "cancelled", "failed", "running", "waiting"):
        await store.submit(_job(name, owner="alice"), 10)
    done = await store.claim("t1", 60)
    assert done is not None
    assert await store.finish(done.id, "t1", JobStatus.COMPLETED, result={"r": 1})
    cancelled = (await store.list(owner=None, status=JobStatus.QUEUED, offset=3, limit=1)).jobs[0]
    assert await store.cancel(cancelled.id) is not None
    failed = await store.claim("t2", 60)
    assert failed is not None
    assert await store.finish(failed.id, "t2", JobStatus.FAILED, error="x")
    running = await store.claim("t3", 60)
    assert running is not None

    ended = await store.get(failed.id)
    assert ended is not None and ended.finished_at is not None
    assert await store.expire(finished_before=ended.finished_at - 60) == 0
    assert await store.expire(finished_before=ended.finished_at + 1) == 3

    for gone in (done.id, cancelled.id, failed.id):
        assert await store.get(gone) is None
    left = await store.list(owner="alice", status=None, offset=0, limit=10)
    assert left.total == 2 and {j.body["prompt"] for j in left.jobs} == {"running", "waiting"}
    assert (await store.list(owner=None, status=JobStatus.COMPLETED, offset=0, limit=10)).total == 0
    assert await store.finish(running.id, "t3", JobStatus.COMPLETED, result={})


def claimer_of(pid: int) -> Claimer:
    """The claimer another process of this machine and namespace would have written."""
    with open(f"/proc/{pid}/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    me = this_process()
    return Claimer(pid, start, me.pidns, me.boot, "x")
