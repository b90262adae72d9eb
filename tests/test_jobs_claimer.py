"""Whether a claimer is certainly gone: only when nothing is left to doubt."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from ollamux.plugins.jobs.claimer import Claimer, certainly_gone, this_process

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/ns/pid"), reason="needs Linux /proc with PID namespaces"
)


def claimer_of(pid: int) -> Claimer:
    with open(f"/proc/{pid}/stat") as f:
        start = f.read().rsplit(")", 1)[1].split()[19]
    me = this_process()
    return Claimer(pid, start, me.pidns, me.boot, "x")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_claimer_reads_back_as_written() -> None:
    me = this_process()
    assert Claimer.parse(str(me)) == me
    assert me.pid == os.getpid() and me.pidns.startswith("pid:[") and me.boot


def test_a_running_process_is_not_gone(sleeper: subprocess.Popen[bytes]) -> None:
    assert not certainly_gone(str(claimer_of(sleeper.pid)))
    assert not certainly_gone(str(this_process()))


def test_an_ended_and_reaped_process_is_gone(sleeper: subprocess.Popen[bytes]) -> None:
    claimer = str(claimer_of(sleeper.pid))
    sleeper.kill()
    sleeper.wait()
    assert certainly_gone(claimer)


def test_a_zombie_is_gone(sleeper: subprocess.Popen[bytes]) -> None:
    claimer = str(claimer_of(sleeper.pid))
    sleeper.kill()
    os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
    with open(f"/proc/{sleeper.pid}/stat") as f:
        assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
    assert certainly_gone(claimer)


def test_a_reused_pid_does_not_keep_the_claim_alive() -> None:
    me = this_process()
    earlier = Claimer(me.pid, str(int(me.start) - 1), me.pidns, me.boot, "old")
    assert certainly_gone(str(earlier))


@pytest.mark.parametrize(
    "claimer",
    [
        "999999:1:pid:[1]:{boot}:x",  # another PID namespace: its pids mean nothing here
        "999999:1:{ns}:another-boot:x",  # before a reboot, or another machine
        "999999:old-format",  # written by a version without namespaces
        "",
    ],
)
def test_any_doubt_leaves_the_decision_to_the_lease(claimer: str) -> None:
    me = this_process()
    assert not certainly_gone(claimer.format(boot=me.boot, ns=me.pidns))
