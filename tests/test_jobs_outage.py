"""The job store going away: the gateway starts and serves live traffic, the jobs API says
503 with Retry-After (never 500), nothing accepted is lost, running jobs record their
outcome once the store is back, and the failure is logged once."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ollamux.testing import gateway_of
from tests.fakes.jobs_backend import JobsFake
from tests.jobs_support import eventually, job_doc, wait_status
from tests.redis_server import NO_REDIS, PrivateRedis, find_redis_server, free_port

MODEL = "llama3.2:latest"


def _job(prompt: str) -> dict[str, Any]:
    return {"path": "/api/generate", "body": {"model": MODEL, "prompt": prompt}}


def _store_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ollamux.jobs" and "job store unavailable" in r.getMessage()
    ]


@pytest.fixture
def own_redis() -> Iterator[PrivateRedis]:
    """A redis-server of this test's own on a fixed port, persisted to an append-only file
    (so that a restart finds the jobs again); not started yet."""
    binary = find_redis_server()
    if binary is None:
        pytest.skip(NO_REDIS)
    server = PrivateRedis(binary, port=free_port(), persist=True)
    yield server
    server.remove()


async def _assert_503(resp: Any) -> None:
    assert resp.status == 503, await resp.text()
    assert int(resp.headers["Retry-After"]) >= 1
    assert "job store" in (await resp.json())["error"]


async def test_gateway_starts_with_redis_down_and_takes_jobs_once_it_is_up(
    gateway_client: Any,
    fake_jobs: tuple[JobsFake, str],
    own_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ollamux.jobs")
    backend, url = fake_jobs
    jobs = {"store": "redis", "redis_url": own_redis.url, "redis_prefix": "t:"}
    client = await gateway_client({"backends": [{"url": url}], "jobs": jobs})

    live = await client.post("/api/generate", json={"model": MODEL, "prompt": "hi"})
    assert live.status == 200 and (await live.json())["response"] == "echo: hi"
    for _ in range(3):
        await _assert_503(await client.post("/jobs", json=_job("too early")))
    await _assert_503(await client.get("/jobs"))
    assert gateway_of(client).gauges["jobs_store_up"]() == 0

    own_redis.start()

    async def accepted() -> str | None:
        resp = await client.post("/jobs", json=_job("in time"))
        return (await resp.json())["id"] if resp.status == 202 else None

    job_id = await eventually(accepted)
    await wait_status(client, job_id, "completed")
    assert backend.calls[job_id] == 1
    assert (await client.get("/jobs?status=completed")).status == 200
    assert len(_store_warnings(caplog)) == 1
    assert any("job store is back" in r.getMessage() for r in caplog.records)
    assert gateway_of(client).counters["job_store_errors"] >= 1


async def test_redis_lost_while_a_job_runs_its_result_is_recorded_when_redis_is_back(
    gateway_client: Any,
    fake_jobs: tuple[JobsFake, str],
    own_redis: PrivateRedis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="ollamux.jobs")
    backend, url = fake_jobs
    own_redis.start()
    jobs = {"store": "redis", "redis_url": own_redis.url, "redis_prefix": "t:", "lease_s": 20}
    client = await gateway_client({"backends": [{"url": url}], "jobs": jobs})
    job_id = (await (await client.post("/jobs", json=_job("block me"))).json())["id"]
    await eventually(lambda: _value(backend.blocked == 1))

    own_redis.stop()
    await _assert_503(await client.post("/jobs", json=_job("refused")))
    await _assert_503(await client.get(f"/jobs/{job_id}"))
    backend.unblock.set()  # the answer arrives while the store is down
    errors = gateway_of(client).counters
    await eventually(lambda: _value(errors["job_store_errors"] >= 3))
    own_redis.start()

    doc = await wait_status(client, job_id, "completed")
    assert doc["attempts"] == 1 and backend.calls[job_id] == 1
    result = await (await client.get(f"/jobs/{job_id}/result")).json()
    assert result["response"] == "echo: block me"
    listed = await (await client.get("/jobs")).json()
    assert [j["id"] for j in listed["jobs"]] == [job_id]  # the refused one was never stored
    assert len(_store_warnings(caplog)) == 1


# -- a full disk -------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 512 KiB tmpfs of this test's own (needs the right to mount: root)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        chunk = 1 << 16
        while chunk:
            try:
                os.write(fd, b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 2
    finally:
        os.close(fd)
    return filler


async def test_full_disk_refuses_new_jobs_with_503_and_running_ones_finish_once_space_is_back(
    gateway_client: Any, fake_jobs: tuple[JobsFake, str], tiny_disk: Path
) -> None:
    backend, url = fake_jobs
    jobs = {"sqlite_path": str(tiny_disk / "jobs.db"), "workers": 2, "lease_s": 20}
    client = await gateway_client({"backends": [{"url": url, "max_concurrency": 4}], "jobs": jobs})
    # Recording each answer (which repeats its prompt) needs room the disk will not have.
    running = []
    for i in range(2):
        resp = await client.post("/jobs", json=_job(f"block-{i} " + "x" * 8000))
        running.append((await resp.json())["id"])
    await eventually(lambda: _value(backend.blocked == 2))

    filler = _fill(tiny_disk)
    await _assert_503(await client.post("/jobs", json=_job("y" * 100_000)))
    backend.unblock.set()
    await eventually(lambda: _value(backend.blocked == 0))  # both answers are in
    errors = gateway_of(client).counters
    failed_so_far = errors["job_store_errors"]
    await eventually(lambda: _value(errors["job_store_errors"] >= failed_so_far + 2))
    for job_id in running:  # readable, still waiting to record their answers
        assert (await job_doc(client, job_id))["status"] == "processing"

    filler.unlink()
    for job_id in running:
        doc = await wait_status(client, job_id, "completed")
        assert doc["attempts"] == 1 and backend.calls[job_id] == 1
    assert (await client.post("/jobs", json=_job("z" * 10_000))).status == 202
    listed = await (await client.get("/jobs?page_size=10")).json()
    assert listed["total"] == 3


async def _value(value: Any) -> Any:
    return value


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A read-only bind mount of an empty directory (needs the right to mount: root)."""
    source, where = tmp_path / "source", tmp_path / "ro"
    source.mkdir()
    where.mkdir()
    for args in (["--bind", str(source), str(where)], ["-o", "remount,bind,ro", str(where)]):
        done = subprocess.run(["mount", *args], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(where)], check=False)
            pytest.skip(f"cannot make a read-only bind mount: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_read_only_disk_at_start_is_503_on_submit_until_it_is_writable(
    gateway_client: Any, fake_jobs: tuple[JobsFake, str], read_only_dir: Path
) -> None:
    backend, url = fake_jobs
    jobs = {"sqlite_path": str(read_only_dir / "jobs.db")}
    client = await gateway_client({"backends": [{"url": url}], "jobs": jobs})
    live = await client.post("/api/generate", json={"model": MODEL, "prompt": "hi"})
    assert live.status == 200
    await _assert_503(await client.post("/jobs", json=_job("refused")))
    await _assert_503(await client.post("/api/v1/prompt", json={"prompt": "refused"}))

    remount = await asyncio.create_subprocess_exec(
        "mount", "-o", "remount,bind,rw", str(read_only_dir)
    )
    assert await remount.wait() == 0

    async def accepted() -> str | None:
        resp = await client.post("/jobs", json=_job("accepted"))
        return (await resp.json())["id"] if resp.status == 202 else None

    job_id = await eventually(accepted)
    await wait_status(client, job_id, "completed")
    assert backend.calls[job_id] == 1
    assert (await (await client.get("/jobs")).json())["total"] == 1
