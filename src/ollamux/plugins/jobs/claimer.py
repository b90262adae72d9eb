"""Who claimed a job, and whether that process is *certainly* gone.

A claim in the SQLite store records its claimer as
``<pid>:<start time>:<pid namespace>:<boot id>:<random>``. The lease decides when a job
comes back; this is only a fast path for the one case that can be decided for sure: the
claimer ran on this machine (same boot id), in this PID namespace, and the process with
that pid is no longer the one that claimed (no such pid, another start time: the pid was
reused) or has exited and not been reaped yet (a zombie never runs again). Any doubt (other
namespace, other boot, no ``/proc``, a claimer written by an older version) answers
"not certain", and then only the lease counts.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Claimer:
    pid: int
    start: str  # the process start time in clock ticks since boot (/proc/<pid>/stat field 22)
    pidns: str  # e.g. "pid:[4026531836]"
    boot: str
    nonce: str

    def __str__(self) -> str:
        return f"{self.pid}:{self.start}:{self.pidns}:{self.boot}:{self.nonce}"

    @classmethod
    def parse(cls, text: str) -> Claimer | None:
        # The namespace contains no ':' after its "pid:" prefix; split from both ends.
        parts = text.split(":")
        if len(parts) != 6:
            return None
        pid, start, ns_kind, ns_id, boot, nonce = parts
        try:
            return cls(int(pid), start, f"{ns_kind}:{ns_id}", boot, nonce)
        except ValueError:
            return None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _stat(pid: int | str) -> tuple[str, str] | None:
    """(state, start time) of a process from ``/proc/<pid>/stat``; ``None`` if no such pid."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except FileNotFoundError:
        return None
    # "pid (comm) state ppid ..." where comm may hold spaces and parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], fields[19]


@cache
def _machine() -> tuple[str, str]:
    """(pid namespace, boot id) of this process; empty when they cannot be trusted."""
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        pidns = os.readlink("/proc/self/ns/pid")
        # A /proc of another PID namespace (mounted without --mount-proc) shows other pids.
        if os.readlink("/proc/self") != str(os.getpid()):
            pidns = ""
    except OSError:
        pidns = ""
    return pidns, boot


def this_process() -> Claimer:
    """A fresh claimer for this process (a new nonce per store instance)."""
    pidns, boot = _machine()
    stat = _stat("self") if pidns else None
    start = stat[1] if stat else ""
    return Claimer(os.getpid(), start, pidns, boot, secrets.token_hex(4))


def certainly_gone(text: str) -> bool:
    """Whether the process that wrote claimer ``text`` has certainly stopped running."""
    claimer = Claimer.parse(text)
    pidns, boot = _machine()
    if claimer is None or not pidns or not boot or not claimer.start:
        return False
    if (claimer.pidns, claimer.boot) != (pidns, boot):
        return False
    stat = _stat(claimer.pid)
    if stat is None:
        return True
    state, start = stat
    if start != claimer.start:
        return True  # the pid now belongs to another process
    return state in ("Z", "X")  # exited, not yet reaped: it will never run again
