"""The periodic sweep: report jobs stuck in ``processing``, delete expired ones.

Every ``jobs.sweep_interval_s`` each gateway instance:

- looks for jobs ``processing`` for more than ``jobs.stuck_after_s``: they are logged (a
  warning naming the oldest), counted in ``gateway.counters["jobs_stuck_reported"]`` and
  published as the gauge ``jobs_stuck``. A worker that runs a job renews its lease, so a
  job reported here is running for real (a very long generation) or its worker hangs;
  a job whose worker died comes back through its lease, not through this report;
- deletes the jobs that ended more than ``jobs.ttl_s`` ago (both stores).

An unreachable store skips a turn (the store's guard logs and counts the failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from ...gateway import Gateway
from .model import iso
from .settings import JobsConfig
from .store import JobStore, StoreUnavailable

log = logging.getLogger("ollamux.jobs")

# At most this many stuck jobs are looked at per sweep.
STUCK_LIMIT = 100


class Sweeper:
    def __init__(self, gateway: Gateway, store: JobStore, config: JobsConfig) -> None:
        self.gateway = gateway
        self.store = store
        self.config = config
        self.stuck = 0  # jobs found stuck by the last sweep
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ollamux-jobs-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        interval = max(0.05, self.config.sweep_interval_s)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sweep()
            except StoreUnavailable:
                pass
            except Exception:
                log.exception("jobs sweep failed")

    async def sweep(self) -> None:
        now = time.time()
        stuck = await self.store.stuck(now - self.config.stuck_after_s, STUCK_LIMIT)
        self.stuck = len(stuck)
        if stuck:
            self.gateway.counters["jobs_stuck_reported"] += len(stuck)
            oldest = stuck[0]
            log.warning(
                "jobs: %d job(s) processing for more than %gs; oldest %s (started %s, attempt %d)",
                len(stuck),
                self.config.stuck_after_s,
                oldest.id,
                iso(oldest.started_at),
                oldest.attempts,
            )
        expired = await self.store.expire(now - self.config.ttl_s)
        if expired:
            log.info("jobs: %d ended job(s) older than %gs deleted", expired, self.config.ttl_s)
