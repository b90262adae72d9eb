"""The jobs service of one gateway: its store, its workers and the rules both API forms share.

The gateway starts whether or not the job store can be reached: until it can (and again
whenever it cannot), the jobs API answers 503 with ``Retry-After`` while live traffic is
served as usual; the store is tried again every ``RETRY_S`` (see ``guard.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ...errors import GatewayError
from ...exchange import Principal
from ...gateway import Gateway
from ...permissions import EVERYONE, JOBS_CANCEL, JOBS_READ, MODEL_USE
from .guard import GuardedStore
from .model import Job, JobStatus
from .redis_store import RedisJobStore
from .runner import JobRunner
from .settings import JobsConfig, settings
from .sqlite_store import SqliteJobStore
from .store import JobStore, Page, StoreUnavailable
from .sweep import Sweeper
from .validation import Submission

log = logging.getLogger("ollamux.jobs")

# How often a store that could not be opened is tried again.
RETRY_S = 1.0


def make_store(config: JobsConfig) -> JobStore:
    if config.store == "redis":
        return RedisJobStore(config.redis_url, config.redis_prefix)
    return SqliteJobStore(config.sqlite_path)


class JobsService:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = settings(gateway.config)
        self.store = GuardedStore(
            make_store(self.config), gateway.counters, max(0.1, self.config.lease_s)
        )
        self.runner = JobRunner(gateway, self.store, self.config)
        self.sweeper = Sweeper(gateway, self.store, self.config)
        self._connecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.gateway.gauges["jobs_queued"] = lambda: float(self.runner.counts[JobStatus.QUEUED])
        self.gateway.gauges["jobs_running"] = lambda: float(len(self.runner.running))
        self.gateway.gauges["jobs_processing"] = lambda: float(
            self.runner.counts[JobStatus.PROCESSING]
        )
        self.gateway.gauges["jobs_store_up"] = lambda: float(
            self.store.is_open and self.store.healthy
        )
        self.gateway.gauges["jobs_stuck"] = lambda: float(self.sweeper.stuck)
        try:
            await self.store.open()
        except StoreUnavailable:
            self._connecting = asyncio.create_task(self._connect(), name="ollamux-jobs-connect")
        else:
            await self._opened()
        self.runner.start()  # its workers claim nothing until the store is open
        self.sweeper.start()

    async def _connect(self) -> None:
        """Try the store every ``RETRY_S`` until it opens (it logs once per interval)."""
        while True:
            await asyncio.sleep(RETRY_S)
            try:
                await self.store.open()
            except StoreUnavailable:
                continue
            await self._opened()
            self.runner.notify()
            return

    async def _opened(self) -> None:
        recovered = await self.store.recover(self.config.max_attempts)
        if recovered:
            log.warning(
                "jobs: %d interrupted job(s) handed back (queued again or failed)", recovered
            )
        self.runner.counts = await self.store.counts()

    async def stop_workers(self) -> None:
        """The server stops listening: running jobs go back to the queue, no more waiting
        for a store that is down."""
        self.store.closing = True
        await self.runner.stop()

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        await self.sweeper.stop()
        await self.stop_workers()
        await self.store.close()

    # -- the shared rules --------------------------------------------------------------------

    async def submit(self, sub: Submission, principal: Principal, job_id: str | None = None) -> Job:
        model = sub.body.get("model")
        if isinstance(model, str) and not await self.gateway.allowed(principal, MODEL_USE, model):
            raise GatewayError(
                403, f"model {model!r} is not allowed for this key", code="model_not_allowed"
            )
        priority = sub.priority if sub.priority is not None else principal.priority
        job = Job(
            path=sub.path, body=sub.body, owner=principal.name, priority=priority, kind=sub.kind
        )
        if job_id:
            job.id = job_id
        if not await self.store.submit(job, self.config.max_queued):
            raise GatewayError(
                503,
                f"the job backlog is full ({self.config.max_queued} queued); retry later",
                headers={"Retry-After": "5"},
            )
        self.runner.notify()
        return job

    async def find(self, job_id: str, principal: Principal) -> Job:
        """A job the caller may see (404 for others' jobs, as for missing ones)."""
        job = await self.store.get(job_id)
        if job is None or not await self.gateway.allowed(principal, JOBS_READ, job.owner):
            raise GatewayError(404, f"job {job_id!r} not found")
        return job

    async def page(
        self, principal: Principal, status: JobStatus | None, page: int, size: int
    ) -> Page:
        everyone = await self.gateway.allowed(principal, JOBS_READ, EVERYONE)
        owner = None if everyone else principal.name
        return await self.store.list(
            owner=owner, status=status, offset=(page - 1) * size, limit=size
        )

    async def cancel(self, job_id: str, principal: Principal) -> Job:
        job = await self.find(job_id, principal)
        if not await self.gateway.allowed(principal, JOBS_CANCEL, job.owner):
            raise GatewayError(403, f"job {job_id!r} may not be cancelled by this key")
        if job.status.terminal:
            raise GatewayError(409, f"job {job_id!r} is already {job.status}")
        before = await self.store.cancel(job_id)
        if before is None or before.status.terminal:
            raise GatewayError(409, f"job {job_id!r} has already ended")
        if before.status is JobStatus.PROCESSING:
            self.runner.abort(job_id)
        job.status = JobStatus.CANCELLED
        return job
