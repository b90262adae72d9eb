"""``--workers N``: N processes serving one port (SO_REUSEPORT), under a small supervisor.

Each worker is a full gateway of its own (own plugins, own backend slots). A backend's
``max_concurrency`` (and a key's ``max_concurrency`` and ``rpm``, unless the auth plugin
keeps them in Redis) is split between the workers so that together they stay within it:
worker ``i`` of ``N`` gets ``c // N``, plus one for the first ``c % N`` workers. A share
is never below 1 (a worker must be able to reach every backend), so a limit smaller than
the number of workers can be exceeded, up to ``N``; keep limits ``>= workers`` where that
matters.

The supervisor passes SIGTERM/SIGINT (graceful stop) and SIGHUP (reload) on to the
workers and restarts a worker that dies unexpectedly.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from aiohttp import web

from . import event_loop
from .config import Config
from .config_loader import ConfigError, load_config

log = logging.getLogger("ollamux.workers")

# A worker that fails this soon after starting is not restarted: it would fail again
# (port taken, plugin broken); the whole server stops instead.
_EARLY_EXIT_S = 5.0

# What the supervisor passes on to its workers.
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@dataclass(frozen=True)
class WorkerSlot:
    """Which worker this process is: ``index`` of ``count``."""

    index: int = 0
    count: int = 1
    # A private directory (mode 0700) where each worker serves its own numbers on a unix
    # socket, so that any worker can answer ``/metrics`` for all of them.
    peers_dir: str = ""

    def socket_path(self, index: int) -> str:
        return os.path.join(self.peers_dir, f"worker-{index}.sock")

    def share(self, capacity: int) -> int:
        base, extra = divmod(capacity, self.count)
        return max(1, base + (1 if self.index < extra else 0))

    def apply(self, config: Config) -> None:
        """Give this worker its share of every static backend's ``max_concurrency``
        (plugins take their own shares, e.g. of a key's limits: ``WORKER_SLOT``)."""
        if self.count == 1:
            return
        for b in config.backends:
            b.max_concurrency = self.share(b.max_concurrency)


# Where a worker's app finds its slot (set before the app starts, read by plugins).
WORKER_SLOT: web.AppKey[WorkerSlot] = web.AppKey("ollamux_worker_slot", WorkerSlot)


class EarlyHup:
    """Remembers a SIGHUP that arrives while a worker starts, before its event loop
    listens for signals; the worker reloads once it is up instead of dying of it."""

    def __init__(self) -> None:
        self.seen = False
        signal.signal(signal.SIGHUP, self._note)

    def _note(self, _sig: int, _frame: FrameType | None) -> None:
        self.seen = True


def _worker_main(
    config: Config,
    config_path: str | Path | None,
    overrides: Mapping[str, Any] | None,
    slot: WorkerSlot,
) -> None:
    from .plugin_manager import build_plugin_manager
    from .server import run

    early_hup = EarlyHup()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)  # stopped before serving: nothing to drain
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
    config = _current(config, config_path, overrides)
    try:
        event_loop.run(
            run(
                config,
                build_plugin_manager(config),
                config_path=config_path,
                overrides=overrides,
                slot=slot,
                early_hup=early_hup,
            ),
            config.server.event_loop,
        )
    except OSError as exc:  # most often: the port is taken (by something not ollamux)
        server = config.server
        log.error("worker %d cannot serve on %s:%d: %s", slot.index, server.host, server.port, exc)
        raise SystemExit(1) from None


def _current(
    config: Config, config_path: str | Path | None, overrides: Mapping[str, Any] | None
) -> Config:
    """The config file as it is now (a worker restarted after a reload must not come back
    with the old one); the supervisor's copy if the file no longer validates."""
    try:
        return load_config(config_path, env=os.environ, overrides=overrides)
    except ConfigError as exc:
        log.error("worker keeps the config it was started with: %s", exc)
        return config


def run_workers(
    config: Config, config_path: str | Path | None, overrides: Mapping[str, Any] | None
) -> int:
    """Start ``server.workers`` processes and supervise them until told to stop."""
    ctx = multiprocessing.get_context("fork")
    count = config.server.workers
    procs: dict[int, tuple[multiprocessing.process.BaseProcess, float]] = {}
    stopping = False
    peers_dir = tempfile.mkdtemp(prefix="ollamux-workers-")

    def start(index: int) -> None:
        slot = WorkerSlot(index, count, peers_dir)
        p = ctx.Process(
            target=_worker_main,
            args=(config, config_path, overrides, slot),
            name=f"ollamux-worker-{index}",
        )
        # Until the child has its own handlers it would run the supervisor's ``forward``
        # (a copy of ``procs``, siblings that may be gone): the forwarded signals stay
        # blocked across the fork; the child unblocks them once its handlers are set.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
        try:
            p.start()
            procs[index] = (p, time.monotonic())
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)

    def forward(sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if sig in (signal.SIGTERM, signal.SIGINT):
            stopping = True
        for p, _ in procs.values():
            if p.pid is not None and p.exitcode is None:
                os.kill(p.pid, signal.SIGTERM if sig == signal.SIGINT else sig)

    for sig in _FORWARDED:
        signal.signal(sig, forward)
    for i in range(count):
        start(i)
    log.info("supervisor pid %d started %d workers", os.getpid(), count)
    status = 0
    while procs:
        multiprocessing.connection.wait([p.sentinel for p, _ in procs.values()], timeout=1.0)
        for index, (p, started) in list(procs.items()):
            if p.exitcode is None:
                continue
            del procs[index]
            if stopping:
                continue
            if time.monotonic() - started < _EARLY_EXIT_S:
                log.error("worker %d exited with %s at start; stopping", index, p.exitcode)
                status = 1
                forward(signal.SIGTERM, None)
            else:
                log.warning("worker %d exited with %s; restarting it", index, p.exitcode)
                start(index)
    shutil.rmtree(peers_dir, ignore_errors=True)
    return status
