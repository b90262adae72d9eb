"""The background writer: status writes leave the request path at once and are coalesced.

``put`` only files the request under its task id and wakes the writer task, which lingers
``linger_s`` (so that more changes gather), then takes a snapshot of each task filed — its
status as of that moment — and writes them all in one batch. A task that changes state
three times within that time costs one snapshot and one write; a short request is written
once, in its end state: a request still running that began less than ``linger_s`` before
the batch is left for the next one (by then it has usually ended), so that a busy gateway
does not write most of its requests twice (once running, once ended). A running task thus
reaches the store between one and two ``linger_s`` after it began. When the store fails,
the batch is kept (up to a bound, newer records win) and retried after a pause; the
failure is logged once per interval, and requests never notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from ...exchange import Exchange
from .store import TaskRecord, TaskStore

# What may wait for writing: a live request (snapshotted when written) or, after a failed
# write, the snapshot itself (so that no request is kept alive by a store that is down).
Filed = Exchange | TaskRecord

log = logging.getLogger("ollamux.tasks")


class TaskWriter:
    def __init__(
        self,
        store: TaskStore,
        snapshot: Callable[[Exchange], TaskRecord],
        *,
        max_pending: int = 10_000,
        linger_s: float = 0.05,
        retry_s: float = 1.0,
        log_every_s: float = 60.0,
    ) -> None:
        self.store = store
        self.snapshot = snapshot
        self.max_pending = max_pending
        self.linger_s = linger_s
        self.retry_s = retry_s
        self.log_every_s = log_every_s
        self.clock = time.monotonic  # what ``Exchange.started_at`` is measured with
        self.healthy = True
        self.failures = 0  # store errors so far: ollamux_task_store_errors_total
        self.written = 0
        self.dropped = 0
        self._pending: dict[str, Filed] = {}
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = asyncio.Event()
        self._last_logged = -float("inf")
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def pending_record(self, task_id: str) -> TaskRecord | None:
        """The status of ``task_id`` waiting to be written, if any (newer than the store's)."""
        filed = self._pending.get(task_id)
        if filed is None or isinstance(filed, TaskRecord):
            return filed
        # Keep the snapshot shown so that exactly this document (same event_id) is written.
        record = self._pending[task_id] = self.snapshot(filed)
        return record

    def _record(self, filed: Filed) -> TaskRecord:
        return filed if isinstance(filed, TaskRecord) else self.snapshot(filed)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ollamux-tasks-writer")

    def put(self, task_id: str, filed: Filed) -> None:
        """File a task for writing; replaces whatever of the same task waits to be written.

        Only the first task filed since the last batch (or since a failed write) wakes the
        writer; the others find it woken already: a request's later state changes are a
        dict assignment."""
        pending = self._pending
        if task_id not in pending:
            if len(pending) >= self.max_pending:
                self.dropped += 1
                return
            if not pending or self._idle.is_set():
                self._idle.clear()
                self._wake.set()
        pending[task_id] = filed

    async def flush(self) -> None:
        """Wait until everything put so far was written (or given up for now)."""
        if self._task is None or self._task.done():
            return
        await self._idle.wait()

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Write what is pending (for at most ``timeout_s``), then end the writer task."""
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.linger_s)
            self._wake.clear()
            if self._pending:
                ok = await self._write_batch()
                if ok and self._pending:
                    self._wake.set()  # requests left for the next batch: no put wakes it
                if not ok and not self._stopping.is_set():
                    self._idle.set()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.retry_s)
                    self._wake.set()
                    continue
            if not self._pending:
                self._idle.set()
            if self._stopping.is_set():
                return

    async def _write_batch(self) -> bool:
        filed, self._pending = self._pending, {}
        # A request still running that began within a linger waits for the next batch
        # (unless the writer is stopping: then everything goes now).
        young = math.inf if self._stopping.is_set() else self.clock() - self.linger_s
        batch = []
        for task_id, f in filed.items():
            if not isinstance(f, TaskRecord) and f.started_at > young:
                self._pending[task_id] = f
            else:
                batch.append(self._record(f))
        if not batch:
            return True
        try:
            await self.store.put_many(batch)
        except Exception as exc:
            for record in batch:
                if record.task_id not in self._pending and len(self._pending) < self.max_pending:
                    self._pending[record.task_id] = record
            self.note_failure(exc)
            return False
        self.written += len(batch)
        if not self.healthy:
            log.warning("task store is back; %d pending status writes flushed", len(batch))
        self.healthy = True
        return True

    def note_failure(self, exc: BaseException) -> None:
        """The store failed: log it, at most once per ``log_every_s``."""
        self.healthy = False
        self.failures += 1
        now = time.monotonic()
        if now - self._last_logged >= self.log_every_s:
            self._last_logged = now
            log.warning(
                "task store unavailable (%s: %s); requests go on, status writes are retried",
                type(exc).__name__,
                exc,
            )
