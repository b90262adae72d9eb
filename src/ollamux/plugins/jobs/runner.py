"""The worker pool: claims jobs and runs each through this gateway's own request path.

A worker dispatches the job's body (with ``"stream": false``) in-process
(``gateway.dispatch``) as the job's owner, with the job id as task id, so permissions,
allow-lists, limits, rewrite, translation, balancing and task tracking treat it like a live
request of that owner. While a job runs, its worker renews the claim's lease; when the claim
is lost (the job was cancelled, possibly on another instance) the request is cancelled,
upstream included.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from ...errors import GatewayError, upstream_error_message
from ...exchange import Principal
from ...gateway import Gateway
from ...protocol import KEEP, TASK_ID
from . import detach
from .model import Job, JobStatus
from .settings import JobsConfig
from .store import JobStore
from .validation import upstream_body

log = logging.getLogger("ollamux.jobs")

# Answers worth another attempt (the backend side failed); any other error is final.
_RETRYABLE = frozenset({408, 500, 502, 503, 504})
# How long a job whose owner has no free slot waits before it is offered again.
_BUSY_OWNER_WAIT_S = 0.5


class _OwnerBusy(Exception):
    """The owner's key is at its concurrency limit: the job waits, no attempt spent."""


@dataclass
class _Running:
    job: Job
    token: str
    task: asyncio.Task[tuple[int, bytes]]


class JobRunner:
    def __init__(self, gateway: Gateway, store: JobStore, config: JobsConfig) -> None:
        self.gateway = gateway
        self.store = store
        self.config = config
        self.running: dict[str, _Running] = {}
        self.backends: dict[str, str] = {}  # job id -> backend that answered (set by a hook)
        self.content_types: dict[str, str] = {}  # job id -> Content-Type of its answer
        self._lease_lost: set[str] = set()  # running jobs whose claim was lost
        self.counts: dict[JobStatus, int] = {JobStatus.QUEUED: 0, JobStatus.PROCESSING: 0}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._recording: set[asyncio.Task[None]] = set()
        self._closing = False
        self._polling = False  # an idle worker is polling the queue (see ``_idle``)
        # How often an idle worker looks at a queue that others (instances) may fill.
        self._poll_s = 0.25 if store.shared else 0.5
        self._renew_s = max(0.05, min(config.lease_s / 3, 2.0))

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._worker(), name=f"ollamux-job-worker-{i}")
            for i in range(self.config.workers)
        ]
        self._tasks.append(asyncio.create_task(self._maintain(), name="ollamux-jobs-maintain"))

    async def stop(self) -> None:
        """Stop the workers; jobs they were running go back to the queue, attempt uncounted.

        Called when the server stops listening (so the requests of running jobs do not hold
        up the shutdown) and again at shutdown; the second call finds nothing left to do."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*self._recording, return_exceptions=True)

    def notify(self) -> None:
        """A job was queued: wake idle workers."""
        self._wake.set()

    def abort(self, job_id: str) -> None:
        """Drop the upstream request of a job that was cancelled while running here."""
        run = self.running.get(job_id)
        if run is not None:
            run.task.cancel()

    # -- the loops ---------------------------------------------------------------------------

    async def _maintain(self) -> None:
        """Refresh the published counts; hand back jobs whose worker died."""
        tick = max(0.05, min(1.0, self.config.lease_s / 4))
        while True:
            try:
                if await self.store.recover(self.config.max_attempts):
                    self.notify()
                self.counts = await self.store.counts()
            except Exception:
                self.gateway.counters["job_store_errors"] += 1
                log.exception("job store maintenance failed")
            await asyncio.sleep(tick)

    async def _worker(self) -> None:
        while not self._closing:
            self._wake.clear()
            token = uuid.uuid4().hex
            try:
                job = await self.store.claim(token, self.config.lease_s)
            except Exception:
                self.gateway.counters["job_store_errors"] += 1
                log.exception("claiming a job failed")
                job = None
            if job is None:
                await self._idle()
                continue
            self._wake.set()  # there may be more: idle siblings look too
            try:
                await self._run(job, token)
            except Exception:  # the store failed: the claim's lease or recovery hands it back
                log.exception("running job %s failed", job.id)

    async def _idle(self) -> None:
        """Wait for work. One idle worker polls the queue (other processes or instances
        may fill it, jobs may come back from a lapsed lease); the others sleep until woken,
        by a new job or by a claim of a sibling: one store transaction per poll interval
        instead of one per worker."""
        if self._polling:
            await self._wake.wait()
            return
        self._polling = True
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_s)
        finally:
            self._polling = False

    # -- one job -----------------------------------------------------------------------------

    async def _run(self, job: Job, token: str) -> None:
        task = asyncio.create_task(self._call(job))
        self.running[job.id] = _Running(job, token, task)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self._renew_s)
                if not task.done() and not await self._renew(job, token):
                    self._lease_lost.add(job.id)  # cancelled or handed on: not ours to mark
                    task.cancel()
        except asyncio.CancelledError:  # shutdown: the job goes back to the queue
            task.cancel()
            task.add_done_callback(_consume)
            self._forget(job.id)
            with contextlib.suppress(Exception):
                await self.store.release(job.id, token, keep_attempt=False)
            raise
        if not task.cancelled() and isinstance(task.exception(), _OwnerBusy):
            # The owner's key has no free slot: the job waits its turn, attempt uncounted.
            self._forget(job.id)
            await self.store.release(job.id, token, keep_attempt=False)
            await asyncio.sleep(_BUSY_OWNER_WAIT_S)
            self.notify()
            return
        # Record the outcome in the background: this worker claims its next job meanwhile
        # (both writes then share one commit).
        recorder = asyncio.create_task(self._settle_logged(job, token, task))
        self._recording.add(recorder)
        recorder.add_done_callback(self._recording.discard)

    async def _settle_logged(
        self, job: Job, token: str, task: asyncio.Task[tuple[int, bytes]]
    ) -> None:
        try:
            await self._settle(job, token, task)
        except Exception:  # the store failed: the claim's lease or recovery hands it back
            log.exception("recording the outcome of job %s failed", job.id)

    def _forget(self, job_id: str) -> None:
        self.running.pop(job_id, None)
        self._lease_lost.discard(job_id)
        self.backends.pop(job_id, None)
        self.content_types.pop(job_id, None)

    async def _settle(self, job: Job, token: str, task: asyncio.Task[tuple[int, bytes]]) -> None:
        """Record how the request to ourselves ended."""
        try:
            status, raw = task.result()
        except asyncio.CancelledError:
            log.info("job %s was cancelled while running", job.id)
            if not self._closing and job.id not in self._lease_lost:
                # Cancelled as a task (DELETE /tasks/{id}): the job says so too.
                await self.store.cancel(job.id)
        except GatewayError as exc:  # the owner may no longer act (its key was removed)
            await self._failed(job, token, exc.message, retry=False)
        except Exception:
            log.exception("job %s: running it failed", job.id)
            await self._failed(job, token, "internal error running the job", retry=True)
        else:
            await self._record(job, token, status, raw)
        finally:
            self._forget(job.id)

    async def _renew(self, job: Job, token: str) -> bool:
        try:
            return await self.store.renew(job.id, token, self.config.lease_s)
        except Exception:
            self.gateway.counters["job_store_errors"] += 1
            log.exception("renewing the lease of job %s failed", job.id)
            return True  # keep going; the lease decides if the store stays unreachable

    async def _call(self, job: Job) -> tuple[int, bytes]:
        """Run the job's request in-process as its owner: status and answer body."""
        gateway = self.gateway
        owner = await gateway.hooks.resolve_principal(gateway, job.owner)
        if owner is None:
            owner = Principal(name=job.owner, authenticated=True)
        # A detached request keeps its own ``stream``; every job's output is kept (KEEP).
        body = job.body if job.kind == detach.KIND else upstream_body(job.body)
        done = await gateway.dispatch(
            "POST", job.path, body, owner, task_id=job.id, headers={TASK_ID: job.id, KEEP: "true"}
        )
        self.content_types[job.id] = done.headers.get("Content-Type", "")
        if done.exchange.backend is not None:
            self.backends[job.id] = done.exchange.backend.name
        elif done.status == 429:  # refused before any backend: the owner's own limit
            raise _OwnerBusy(job.owner)
        return done.status, done.body

    async def _record(self, job: Job, token: str, status: int, raw: bytes) -> None:
        if status >= 400:
            message = f"HTTP {status}: {upstream_error_message(raw)}"
            await self._failed(job, token, message, retry=status in _RETRYABLE)
            return
        result: Any
        content_type = self.content_types.get(job.id, "")
        try:
            if job.kind == detach.KIND and "json" not in content_type.split(";")[0]:
                raise ValueError("a stream")
            result = json.loads(raw)
        except ValueError:
            if job.kind == detach.KIND:
                result = detach.stream_result(content_type, raw)
            else:
                result = {"text": raw.decode(errors="replace")}
        backend = self.backends.get(job.id, "")
        if not await self.store.finish(
            job.id, token, JobStatus.COMPLETED, result=result, backend=backend
        ):
            log.info("job %s finished but its claim was gone (cancelled); result dropped", job.id)

    async def _failed(self, job: Job, token: str, message: str, *, retry: bool) -> None:
        if retry and job.attempts < self.config.max_attempts:
            log.warning("job %s attempt %d failed, queued again: %s", job.id, job.attempts, message)
            await self.store.release(job.id, token, keep_attempt=True, error=message)
            self.notify()
            return
        backend = self.backends.get(job.id, "")
        await self.store.finish(job.id, token, JobStatus.FAILED, error=message, backend=backend)


def _consume(task: asyncio.Task[tuple[int, bytes]]) -> None:
    """Retrieve the outcome of a request given up on, so asyncio does not report it."""
    if not task.cancelled():
        task.exception()
