"""The job store as the gateway uses it: an outage degrades the jobs API, never the gateway.

``GuardedStore`` wraps the SQLite or Redis store:

- **clients** (submit, read, list, cancel) get ``StoreUnavailable`` when the store is not
  open yet or fails (unreachable, disk full, read-only); the routes answer 503 with
  ``Retry-After``. Nothing is acknowledged that was not stored;
- **workers** never see an error: no job is claimed while the store is down (one real
  attempt per ``retry_s``), maintenance skips a turn, a renewal that fails keeps the job
  until its lease may have lapsed (``lease.py``), and recording an outcome is retried with
  backoff until the lease lapsed (then the job comes back through ``recover``);
- a failure bumps ``gateway.counters["job_store_errors"]`` and is logged at most once per
  ``log_every_s``; the first success after a logged failure says the store is back.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .lease import Leases
from .model import Job, JobStatus
from .store import STORE_ERRORS, JobStore, Page, StoreUnavailable

log = logging.getLogger("ollamux.jobs")

T = TypeVar("T")

# Backoff between attempts to record an outcome.
_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 2.0


class GuardedStore(JobStore):
    def __init__(
        self,
        store: JobStore,
        counters: Counter[str],
        lease_s: float,
        *,
        retry_s: float = 1.0,
        log_every_s: float = 60.0,
    ) -> None:
        self.inner = store
        self.shared = store.shared
        self.counters = counters
        self.leases = Leases(lease_s)
        self.retry_s = retry_s
        self.log_every_s = log_every_s
        self.is_open = False
        self.healthy = True  # the last call to the store succeeded
        self.closing = False  # the gateway stops: no more waiting for the store
        self._next_try = 0.0  # while unhealthy, workers leave the store alone until then
        self._last_logged = -float("inf")
        self._reported = False  # a failure was logged and its end not yet
        self._counts = {JobStatus.QUEUED: 0, JobStatus.PROCESSING: 0}

    # -- health --------------------------------------------------------------------------------

    def failed(self, exc: BaseException) -> None:
        self.counters["job_store_errors"] += 1
        self.healthy = False
        now = time.monotonic()
        self._next_try = now + self.retry_s
        if now - self._last_logged >= self.log_every_s:
            self._last_logged = now
            self._reported = True
            log.warning(
                "job store unavailable (%s: %s); the jobs API answers 503, running jobs "
                "keep their results until it is back",
                type(exc).__name__,
                exc,
            )

    def succeeded(self) -> None:
        self.healthy = True
        if self._reported:
            self._reported = False
            log.warning("job store is back")

    def _resting(self) -> bool:
        """Whether workers should leave the store alone for now (closed, or failing)."""
        return not self.is_open or (not self.healthy and time.monotonic() < self._next_try)

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        if not self.is_open:
            raise StoreUnavailable("job store not connected")
        try:
            result = await call()
        except STORE_ERRORS as exc:
            self.failed(exc)
            raise StoreUnavailable(str(exc)) from exc
        self.succeeded()
        return result

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        """One attempt to open the store; ``StoreUnavailable`` when it cannot be reached."""
        try:
            await self.inner.open()
        except STORE_ERRORS as exc:
            self.failed(exc)
            with contextlib.suppress(*STORE_ERRORS):
                await self.inner.close()
            raise StoreUnavailable(str(exc)) from exc
        self.is_open = True
        self.succeeded()

    async def close(self) -> None:
        self.is_open = False
        await self.inner.close()

    # -- what clients do: errors become StoreUnavailable (503) ----------------------------------

    async def submit(self, job: Job, max_queued: int) -> bool:
        return await self._call(lambda: self.inner.submit(job, max_queued))

    async def get(self, job_id: str) -> Job | None:
        return await self._call(lambda: self.inner.get(job_id))

    async def list(
        self, *, owner: str | None, status: JobStatus | None, offset: int, limit: int
    ) -> Page:
        return await self._call(
            lambda: self.inner.list(owner=owner, status=status, offset=offset, limit=limit)
        )

    async def cancel(self, job_id: str) -> Job | None:
        return await self._call(lambda: self.inner.cancel(job_id))

    async def stuck(self, started_before: float, limit: int) -> builtins.list[Job]:
        return await self._call(lambda: self.inner.stuck(started_before, limit))

    async def expire(self, finished_before: float) -> int:
        return await self._call(lambda: self.inner.expire(finished_before))

    # -- what workers do: no errors, the lease decides -------------------------------------------

    async def recover(self, max_attempts: int) -> int:
        if self._resting():
            return 0
        try:
            touched = await self.inner.recover(max_attempts)
        except STORE_ERRORS as exc:
            self.failed(exc)
            return 0
        self.succeeded()
        return touched

    async def counts(self) -> dict[JobStatus, int]:
        if self._resting():
            return dict(self._counts)
        try:
            self._counts = await self.inner.counts()
        except STORE_ERRORS as exc:
            self.failed(exc)
        return dict(self._counts)

    async def claim(self, token: str, lease_s: float) -> Job | None:
        if self._resting():
            return None
        try:
            job = await self.inner.claim(token, lease_s)
        except STORE_ERRORS as exc:
            self.failed(exc)
            return None
        self.succeeded()
        if job is not None:
            self.leases.confirmed(token)
        return job

    async def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        """``False`` when the claim is gone, or may be: the store could not confirm it for
        so long that the lease may have lapsed (the worker then drops the job)."""
        try:
            kept = await self.inner.renew(job_id, token, lease_s)
        except STORE_ERRORS as exc:
            self.failed(exc)
            kept = not self.leases.presumed_lost(token)
        else:
            self.succeeded()
            if kept:
                self.leases.confirmed(token)
        if not kept:
            self.leases.ended(token)
        return kept

    async def finish(
        self,
        job_id: str,
        token: str,
        status: JobStatus,
        *,
        result: object = None,
        error: str = "",
        backend: str = "",
    ) -> bool:
        return await self._record(
            token,
            lambda: self.inner.finish(
                job_id, token, status, result=result, error=error, backend=backend
            ),
        )

    async def release(
        self, job_id: str, token: str, *, keep_attempt: bool, error: str = ""
    ) -> bool:
        def call() -> Awaitable[bool]:
            return self.inner.release(job_id, token, keep_attempt=keep_attempt, error=error)

        if keep_attempt:  # an outcome (a retryable failure): worth waiting for
            return await self._record(token, call)
        try:  # a give-back (shutdown): once; if it fails, the lease lapses
            released = await call()
        except STORE_ERRORS as exc:
            self.failed(exc)
            raise StoreUnavailable(str(exc)) from exc
        finally:
            self.leases.ended(token)
        self.succeeded()
        return released

    async def _record(self, token: str, call: Callable[[], Awaitable[bool]]) -> bool:
        """Record an outcome, retrying with backoff while the claim's lease may still hold.

        When the lease lapsed (or the gateway stops), give up: ``recover`` hands the job
        back, to be run again."""
        delay = _FIRST_DELAY_S
        try:
            while True:
                try:
                    recorded = await call()
                except STORE_ERRORS as exc:
                    self.failed(exc)
                    left = self.leases.remaining(token)
                    if self.closing or left <= 0:
                        raise StoreUnavailable(
                            f"outcome not recorded, the job's lease lapses: {exc}"
                        ) from exc
                    await asyncio.sleep(min(delay, left))
                    delay = min(delay * 2, _MAX_DELAY_S)
                    continue
                self.succeeded()
                return recorded
        finally:
            self.leases.ended(token)
