"""Gateways in PID namespaces of their own (containers) on one SQLite jobs file: pids mean
nothing across them, so only leases decide. Every job completes and runs once at the
backend; a gateway that was pid 1, killed and restarted as pid 2 under an entrypoint shell,
gets its jobs back within ``lease_s`` plus a few seconds."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.jobs_backend import JobsFake
from tests.jobs_support import eventually
from tests.test_jobs_crash import Gateway, _all_completed, _check_exactly_once, _submit

UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]


def _unshare_works() -> str:
    """Why PID namespaces cannot be used here ("" when they can)."""
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    probe = subprocess.run([*UNSHARE, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"cannot create a PID namespace: {probe.stderr.decode().strip()}"
    return ""


_WHY_NOT = _unshare_works()
pytestmark = pytest.mark.skipif(bool(_WHY_NOT), reason=_WHY_NOT)


def as_pid_1(command: list[str]) -> list[str]:
    """The gateway is pid 1 of a new PID namespace (a container without an init)."""
    return [*UNSHARE, *command]


def under_entrypoint_shell(command: list[str]) -> list[str]:
    """A shell is pid 1 of a new PID namespace and the gateway its child, pid 2 (``; :``
    keeps the shell from exec'ing it)."""
    return [*UNSHARE, "sh", "-c", '"$@"; :', "entrypoint", *command]


def namespace_pid(gw: Gateway) -> int:
    """The gateway's pid inside its own namespace."""
    assert gw.proc is not None
    todo = [gw.proc.pid]
    while todo:
        pid = todo.pop()
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        if b"python" in cmdline[0] and b"serve" in cmdline:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
        todo += [int(c) for c in children]
    raise AssertionError("gateway process not found")


@pytest.fixture
def gateways() -> list[Gateway]:
    return []


@pytest.fixture(autouse=True)
def _stop(gateways: list[Gateway]) -> object:
    yield None
    for gw in gateways:  # unshare does not pass SIGTERM on; --kill-child ends the namespace
        if gw.proc is not None and gw.proc.poll() is None:
            gw.kill()


async def test_two_gateways_in_separate_pid_namespaces_share_one_sqlite_file(
    tmp_path: Path, fake_jobs: tuple[JobsFake, str], gateways: list[Gateway]
) -> None:
    backend, url = fake_jobs
    backend.delay_s = 1.5  # jobs outlive several recovery rounds (one a second)
    jobs = {"sqlite_path": str(tmp_path / "jobs.db"), "workers": 2, "lease_s": 3}
    one = Gateway(tmp_path, "one", url, jobs)
    two = Gateway(tmp_path, "two", url, jobs)
    gateways += [one, two]
    for gw in (one, two):
        gw.wrap = as_pid_1
    await asyncio.gather(one.start(), two.start())
    assert namespace_pid(one) == namespace_pid(two) == 1

    async with aiohttp.ClientSession() as http:
        prompts = {}
        for i in range(12):
            gw = (one, two)[i % 2]
            prompts[await _submit(http, gw, f"job-{i}")] = f"job-{i}"
        started = time.monotonic()
        docs = await _check_exactly_once(http, one, backend, prompts)
        took = time.monotonic() - started
    attempts = [d["attempts"] for d in docs.values()]
    print(f"\n2 namespaces, 12 jobs x 1.5 s: all completed in {took:.1f} s, attempts {attempts}")
    assert attempts == [1] * 12
    assert all(backend.calls[j] == 1 for j in prompts)


async def test_gateway_killed_as_pid_1_and_restarted_as_pid_2_gets_its_jobs_back(
    tmp_path: Path, fake_jobs: tuple[JobsFake, str], gateways: list[Gateway]
) -> None:
    backend, url = fake_jobs
    lease_s = 4
    jobs = {"sqlite_path": str(tmp_path / "jobs.db"), "workers": 2, "lease_s": lease_s}
    gw = Gateway(tmp_path, "gw", url, jobs)
    gateways.append(gw)
    gw.wrap = as_pid_1
    await gw.start()
    assert namespace_pid(gw) == 1

    async with aiohttp.ClientSession() as http:
        prompts = {}
        for i in range(2):  # running when it dies
            prompts[await _submit(http, gw, f"block-{i}")] = f"block-{i}"
        await eventually(lambda: _value(backend.blocked == 2))
        for i in range(4):  # queued when it dies
            prompts[await _submit(http, gw, f"late-{i}")] = f"late-{i}"

        gw.kill()
        backend.unblock.set()
        gw.wrap = under_entrypoint_shell
        restarted = time.monotonic()
        await gw.start()
        assert namespace_pid(gw) == 2  # pid 1 (the shell) lives on

        docs = await _all_completed(http, gw, list(prompts))
        took = time.monotonic() - restarted
        await _check_exactly_once(http, gw, backend, prompts)
    print(f"\nrestart as pid 2: all {len(prompts)} jobs completed {took:.1f} s after restart")
    assert took < lease_s + 10
    for job_id, prompt in prompts.items():
        assert docs[job_id]["attempts"] == (2 if prompt.startswith("block") else 1)


async def _value(value: object) -> object:
    return value
