"""The jobs service of one gateway: its store, its workers and the rules both API forms share."""

from __future__ import annotations

import logging

from ...errors import GatewayError
from ...exchange import Principal
from ...gateway import Gateway
from ...permissions import EVERYONE, JOBS_CANCEL, JOBS_READ, MODEL_USE
from .model import Job, JobStatus
from .redis_store import RedisJobStore
from .runner import JobRunner
from .settings import JobsConfig, settings
from .sqlite_store import SqliteJobStore
from .store import JobStore, Page
from .validation import Submission

log = logging.getLogger("ollamux.jobs")


def make_store(config: JobsConfig) -> JobStore:
    if config.store == "redis":
        return RedisJobStore(config.redis_url, config.redis_prefix)
    return SqliteJobStore(config.sqlite_path)


class JobsService:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = settings(gateway.config)
        self.store = make_store(self.config)
        self.runner = JobRunner(gateway, self.store, self.config)

    async def start(self) -> None:
        await self.store.open()
        recovered = await self.store.recover(self.config.max_attempts)
        if recovered:
            log.warning(
                "jobs: %d interrupted job(s) handed back (queued again or failed)", recovered
            )
        self.runner.counts = await self.store.counts()
        self.gateway.gauges["jobs_queued"] = lambda: float(self.runner.counts[JobStatus.QUEUED])
        self.gateway.gauges["jobs_running"] = lambda: float(len(self.runner.running))
        self.gateway.gauges["jobs_processing"] = lambda: float(
            self.runner.counts[JobStatus.PROCESSING]
        )
        self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()
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
