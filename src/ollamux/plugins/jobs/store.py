"""The job store contract, shared by the SQLite and Redis implementations.

Every state change is conditional, so concurrent workers (in one process or many) never
run the same job twice at once and a result is recorded exactly once:

- ``claim`` moves the best queued job (highest priority, then oldest) to ``processing``,
  counts an attempt and hands it out under a fresh claim ``token``;
- ``finish``, ``release`` and ``renew`` act only while the job is still ``processing``
  under that token; once a job is cancelled, finished or given back, they do nothing;
- a claim holds a lease until ``now + lease_s``, extended by ``renew``; a job whose lease
  expired is handed back by ``recover`` (any process or instance sharing the store), and a
  job whose lease is alive is never taken away.

A store that cannot be reached raises its own errors (``STORE_ERRORS``); ``guard.py``
turns them into 503 answers for clients and retries for the workers.
"""

from __future__ import annotations

import abc
import builtins
import sqlite3
from dataclasses import dataclass

from redis.exceptions import RedisError

from .model import Job, JobStatus


class StoreUnavailable(Exception):
    """The job store cannot be used now (not open yet, unreachable, disk full, read-only)."""


# What a store raises when it cannot do its work (as opposed to a bug).
STORE_ERRORS: tuple[type[BaseException], ...] = (
    StoreUnavailable,
    RedisError,
    sqlite3.Error,
    OSError,
)


@dataclass
class Page:
    jobs: list[Job]
    total: int


class JobStore(abc.ABC):
    # Whether instances on other machines may use the same store (then idle workers look
    # for new jobs more often: nothing wakes them when another instance queues one).
    shared = False

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create what is missing (tables, indexes)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def recover(self, max_attempts: int) -> int:
        """Give back jobs whose worker died: to the queue, or ``failed`` once a job has been
        attempted ``max_attempts`` times. Returns how many jobs were touched.

        Called at start and then periodically by every instance: jobs whose lease expired
        (SQLite also: jobs of a process that certainly stopped, see ``claimer.py``)."""

    @abc.abstractmethod
    async def submit(self, job: Job, max_queued: int) -> bool:
        """Store a new queued job durably; ``False`` (nothing stored) when the backlog
        already holds ``max_queued`` jobs."""

    @abc.abstractmethod
    async def get(self, job_id: str) -> Job | None: ...

    @abc.abstractmethod
    async def list(
        self, *, owner: str | None, status: JobStatus | None, offset: int, limit: int
    ) -> Page:
        """Jobs newest first, optionally only one owner's or one status."""

    @abc.abstractmethod
    async def claim(self, token: str, lease_s: float) -> Job | None:
        """Take the next queued job for a worker, or ``None`` when the queue is empty."""

    @abc.abstractmethod
    async def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        """Extend a claim's lease; ``False`` when the job is no longer this claim's
        (cancelled, or given to another worker after the lease expired)."""

    @abc.abstractmethod
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
        """Record the end (``completed`` with ``result``, or ``failed`` with ``error``);
        ``False`` when the claim is no longer valid (nothing recorded)."""

    @abc.abstractmethod
    async def release(
        self, job_id: str, token: str, *, keep_attempt: bool, error: str = ""
    ) -> bool:
        """Put a claimed job back in the queue (shutdown, or a retryable failure).
        Without ``keep_attempt`` the claim's attempt is not counted."""

    @abc.abstractmethod
    async def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued or processing job. Returns the job as it was before (its status
        says whether anything changed), or ``None`` when there is no such job."""

    @abc.abstractmethod
    async def counts(self) -> dict[JobStatus, int]:
        """How many jobs are in each status (``queued`` and ``processing`` at least)."""

    @abc.abstractmethod
    async def stuck(self, started_before: float, limit: int) -> builtins.list[Job]:
        """Jobs ``processing`` since before ``started_before`` (a UNIX time), oldest first."""

    @abc.abstractmethod
    async def expire(self, finished_before: float) -> int:
        """Delete the jobs that ended before ``finished_before``; returns how many."""
