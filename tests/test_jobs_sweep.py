"""No stranded job: outcomes are retried until the lease lapses, then the job comes back;
stuck jobs are reported; ended jobs expire after ``jobs.ttl_s`` in both stores."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ollamux.plugins.jobs.guard import GuardedStore
from ollamux.plugins.jobs.model import Job, JobStatus
from ollamux.plugins.jobs.sqlite_store import SqliteJobStore
from ollamux.plugins.jobs.store import StoreUnavailable
from ollamux.testing import gateway_of
from tests.fakes.jobs_backend import JobsFake
from tests.jobs_support import eventually, job_doc, wait_status

MODEL = "llama3.2:latest"


def _job(prompt: str = "x") -> Job:
    return Job(path="/api/generate", body={"model": MODEL, "prompt": prompt})


class FlakySqlite(SqliteJobStore):
    """A real SQLite store whose ``finish`` and ``renew`` fail the next N calls (a disk
    that failed for a while)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.finish_failures = 0
        self.renew_failures = 0

    async def finish(self, *args: Any, **kwargs: Any) -> bool:
        if self.finish_failures:
            self.finish_failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return await super().finish(*args, **kwargs)

    async def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        if self.renew_failures:
            self.renew_failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return await super().renew(job_id, token, lease_s)


@pytest.fixture
async def flaky(tmp_path: Path) -> AsyncIterator[tuple[FlakySqlite, GuardedStore]]:
    inner = FlakySqlite(str(tmp_path / "jobs.db"))
    guarded = GuardedStore(inner, Counter(), lease_s=0.5)
    await guarded.open()
    yield inner, guarded
    await guarded.close()


async def test_an_outcome_is_recorded_after_the_store_failed_a_few_times(
    flaky: tuple[FlakySqlite, GuardedStore],
) -> None:
    inner, store = flaky
    await store.submit(_job(), 10)
    job = await store.claim("t", 0.5)
    assert job is not None
    inner.finish_failures = 2
    assert await store.finish(job.id, "t", JobStatus.COMPLETED, result={"r": 1})
    stored = await store.get(job.id)
    assert stored is not None and stored.status is JobStatus.COMPLETED
    assert stored.result == {"r": 1}
    assert store.counters["job_store_errors"] == 2


async def test_an_outcome_that_cannot_be_recorded_lets_the_lease_lapse_and_the_job_return(
    flaky: tuple[FlakySqlite, GuardedStore],
) -> None:
    inner, store = flaky
    await store.submit(_job(), 10)
    job = await store.claim("t", 0.5)
    assert job is not None
    inner.finish_failures = 1_000_000
    with pytest.raises(StoreUnavailable):
        await store.finish(job.id, "t", JobStatus.COMPLETED, result={"r": 1})
    assert store.counters["job_store_errors"] >= 3  # retried with backoff first

    async def back() -> Job | None:
        await store.recover(max_attempts=3)
        found = await store.get(job.id)
        return found if found is not None and found.status is JobStatus.QUEUED else None

    returned = await eventually(back)
    assert returned.attempts == 1
    again = await store.claim("t2", 60)
    assert again is not None and again.id == job.id and again.attempts == 2


async def test_a_worker_that_cannot_renew_gives_up_its_job_before_the_lease_lapses(
    flaky: tuple[FlakySqlite, GuardedStore],
) -> None:
    inner, store = flaky
    await store.submit(_job(), 10)
    job = await store.claim("t", 0.5)
    assert job is not None
    inner.renew_failures = 1_000_000
    assert await store.renew(job.id, "t", 0.5)  # a hiccup: keep running
    started = time.monotonic()

    async def given_up() -> bool:
        return not await store.renew(job.id, "t", 0.5)

    await eventually(given_up)
    assert time.monotonic() - started < 0.5  # before another process may take it


# -- through a gateway ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "redis"])
def store_section(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    url = request.getfixturevalue("redis_url")
    return {"store": "redis", "redis_url": url, "redis_prefix": f"test-sweep-{time.time_ns()}:"}


async def test_ended_jobs_expire_after_ttl_and_waiting_ones_stay(
    gateway_client: Any, fake_jobs: tuple[JobsFake, str], store_section: dict[str, Any]
) -> None:
    _backend, url = fake_jobs
    jobs = {**store_section, "workers": 0, "ttl_s": 0.3, "sweep_interval_s": 0.1}
    client = await gateway_client({"backends": [{"url": url}], "jobs": jobs})
    body = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    ended = (await (await client.post("/jobs", json=body)).json())["id"]
    waiting = (await (await client.post("/jobs", json=body)).json())["id"]
    assert (await client.delete(f"/jobs/{ended}")).status == 200
    assert (await client.get(f"/jobs/{ended}")).status == 200  # not before its time

    async def gone() -> bool:
        return (await client.get(f"/jobs/{ended}")).status == 404

    await eventually(gone)
    assert (await job_doc(client, waiting))["status"] == "queued"
    listed = await (await client.get("/jobs")).json()
    assert [j["id"] for j in listed["jobs"]] == [waiting] and listed["total"] == 1


async def test_a_job_processing_too_long_is_reported(
    gateway_client: Any, fake_jobs: tuple[JobsFake, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ollamux.jobs")
    backend, url = fake_jobs
    jobs = {"stuck_after_s": 0.2, "sweep_interval_s": 0.1}
    client = await gateway_client({"backends": [{"url": url}], "jobs": jobs})
    body = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "block"}}
    job_id = (await (await client.post("/jobs", json=body)).json())["id"]
    gateway = gateway_of(client)

    await eventually(lambda: _value(gateway.counters["jobs_stuck_reported"] >= 1))
    assert gateway.gauges["jobs_stuck"]() == 1
    assert any(
        job_id in r.getMessage() and "processing for more" in r.getMessage() for r in caplog.records
    )

    backend.unblock.set()
    await wait_status(client, job_id, "completed")
    await eventually(lambda: _value(gateway.gauges["jobs_stuck"]() == 0))


async def _value(value: Any) -> Any:
    return value
