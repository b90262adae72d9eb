"""The worker pool: claims jobs and runs each through this gateway's own request path.

A worker sends the job's body (with ``"stream": false``) to ``gateway.self_url + path``
with ``X-Task-Id: <job id>``, the internal token and the owner's name, so auth, rewrite,
translation, balancing and task tracking treat it like any live request. While a job runs,
its worker renews the claim's lease; when the claim is lost (the job was cancelled,
possibly on another instance) the request is dropped, which cancels it upstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp

from ...config import JobsConfig
from ...errors import upstream_error_message
from ...gateway import Gateway
from .model import Job, JobStatus
from .store import JobStore
from .validation import upstream_body

log = logging.getLogger("ollamux.jobs")

INTERNAL_HEADER = "X-Ollamux-Internal"
PRINCIPAL_HEADER = "X-Ollamux-Principal"

# Answers worth another attempt (the backend side failed); any other error is final.
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


class _NotListening(Exception):
    """This gateway did not accept the worker's connection (not listening yet, or closing)."""


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
        await self._wait_until_listening()
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

    async def _wait_until_listening(self) -> None:
        """Jobs re-enter through HTTP: wait until this gateway answers on ``self_url``."""
        while True:
            url = self.gateway.self_url
            if url is not None:
                try:
                    async with self.gateway.session.get(
                        url + "/jobs?page_size=1", headers=self._headers("", "")
                    ):
                        return
                except aiohttp.ClientError:
                    pass
            await asyncio.sleep(0.05)

    # -- one job -----------------------------------------------------------------------------

    async def _run(self, job: Job, token: str) -> None:
        task = asyncio.create_task(self._call(job))
        self.running[job.id] = _Running(job, token, task)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=self._renew_s)
                if not task.done() and not await self._renew(job, token):
                    task.cancel()
        except asyncio.CancelledError:  # shutdown: the job goes back to the queue
            task.cancel()
            task.add_done_callback(_consume)
            self._forget(job.id)
            with contextlib.suppress(Exception):
                await self.store.release(job.id, token, keep_attempt=False)
            raise
        if not task.cancelled() and isinstance(task.exception(), _NotListening):
            self._forget(job.id)
            await self.store.release(job.id, token, keep_attempt=False, error=str(task.exception()))
            await self._wait_until_listening()
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
        self.backends.pop(job_id, None)

    async def _settle(self, job: Job, token: str, task: asyncio.Task[tuple[int, bytes]]) -> None:
        """Record how the request to ourselves ended."""
        try:
            status, raw = task.result()
        except asyncio.CancelledError:
            log.info("job %s was cancelled while running", job.id)
        except (aiohttp.ClientError, TimeoutError) as exc:
            if self._closing:
                await self.store.release(job.id, token, keep_attempt=False)
            else:
                await self._failed(job, token, f"request failed: {exc!r}", retry=True)
        except Exception:
            log.exception("job %s: the request to this gateway failed", job.id)
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

    def _headers(self, job_id: str, owner: str) -> dict[str, str]:
        headers = {"Content-Type": "application/json", INTERNAL_HEADER: self.gateway.internal_token}
        if job_id:
            headers["X-Task-Id"] = job_id
            headers[PRINCIPAL_HEADER] = owner
        return headers

    async def _call(self, job: Job) -> tuple[int, bytes]:
        url = self.gateway.self_url
        if url is None:
            raise _NotListening("the gateway is not listening")
        data = json.dumps(upstream_body(job.body)).encode()
        try:
            async with self.gateway.session.post(
                url + job.path, data=data, headers=self._headers(job.id, job.owner)
            ) as resp:
                return resp.status, await resp.read()
        except aiohttp.ClientConnectorError as exc:
            raise _NotListening(f"cannot reach this gateway at {url}: {exc}") from exc

    async def _record(self, job: Job, token: str, status: int, raw: bytes) -> None:
        if status >= 400:
            message = f"HTTP {status}: {upstream_error_message(raw)}"
            await self._failed(job, token, message, retry=status in _RETRYABLE)
            return
        result: Any
        try:
            result = json.loads(raw)
        except ValueError:
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
