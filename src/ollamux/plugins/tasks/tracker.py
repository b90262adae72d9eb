"""The per-app task tracker: turns request events into status writes.

One ``Tracker`` lives on each gateway (``gateway.tasks``). It owns the store, the
background writer, one heartbeat loop for every running request (not a timer per request)
and the periodic sweep of expired tasks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ...errors import upstream_error_message
from ...exchange import Exchange
from ...transforms import ResponseTransform
from .document import LIVE_STATES, status_text
from .memory_store import MemoryStore
from .progress import FinalLine, progress_text
from .redis_store import RedisStore
from .settings import TasksConfig
from .sqlite_store import SqliteStore
from .store import TaskRecord, TaskStore
from .writer import TaskWriter

if TYPE_CHECKING:
    from .bus import TaskBus
    from .output import Outputs

log = logging.getLogger("ollamux.tasks")

# Bytes of an error answer kept to explain a FAILED task.
_ERROR_BODY_LIMIT = 4096
# How long a request may wait for the store to say who owns the task id it brought.
_CLAIM_TIMEOUT_S = 1.0


class Run:
    """What the tracker keeps about one request (``exchange.state["tasks"]``).

    A status change only stores three attributes here; the document is made from them
    (and from the exchange) when a snapshot is taken: once for a short request, in its end
    state."""

    __slots__ = (
        "changed",
        "created",
        "error_body",
        "final",
        "handle",
        "message",
        "owner",
        "stage",
        "state",
        "tracker",
    )

    def __init__(
        self,
        tracker: Tracker,
        owner: str,
        created: float,
        handle: asyncio.Task[Any] | None = None,
    ) -> None:
        self.tracker = tracker  # the hooks reach it from the request, without a lookup
        self.owner = owner
        self.created = created
        self.state = "PENDING"
        self.stage = "queued"
        self.message = ""
        self.error_body: ErrorCapture | None = None
        # What cancels the request: the asyncio task running it (``DELETE /tasks/{id}``).
        self.handle = handle
        # Set on every status change while someone watches the task (``/tasks/{id}/events``).
        self.changed: asyncio.Event | None = None
        # Reads the backend's own figures (durations, counts) once the answer ended.
        self.final: FinalLine | None = None


class ErrorCapture(ResponseTransform):
    """Keeps the start of an error answer (passing it on unchanged) for the FAILED reason."""

    def __init__(self) -> None:
        self.body = b""

    def feed(self, data: bytes) -> bytes:
        if len(self.body) < _ERROR_BODY_LIMIT:
            self.body += data[: _ERROR_BODY_LIMIT - len(self.body)]
        return data


def make_store(config: TasksConfig) -> TaskStore:
    if config.store == "sqlite":
        return SqliteStore(config.sqlite_path)
    if config.store == "redis":
        horizon = max(config.ttl_running_s, config.ttl_done_s)
        return RedisStore(config.redis_url, config.redis_prefix, horizon)
    return MemoryStore()


class Tracker:
    def __init__(self, config: TasksConfig, store: TaskStore | None = None) -> None:
        self.config = config
        self.store = store if store is not None else make_store(config)
        self.writer = TaskWriter(self.store, self.snapshot)
        self.live: set[Exchange] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        # Set by the plugin at start: the Redis channel between instances (``bus.py``) and
        # the kept outputs (``output.py``).
        self.bus: TaskBus | None = None
        self.outputs: Outputs | None = None

    def find_live(self, task_id: str) -> Exchange | None:
        """The request running here under ``task_id``, if any."""
        for exchange in self.live:
            if exchange.task_id == task_id:
                return exchange
        return None

    async def start(self) -> None:
        # Requests run in this loop: ``begin`` names it to ``current_task`` (which otherwise
        # looks the running loop up, a visible cost per request on Python 3.11).
        self._loop = asyncio.get_running_loop()
        try:
            await self.store.open()
        except Exception as exc:
            if not isinstance(self.store, RedisStore):
                raise
            # Redis may come up later: the client reconnects on its own, writes retry.
            self.writer.note_failure(exc)
        self.writer.start()
        self._loops = [
            asyncio.create_task(
                self._every(self.config.heartbeat_s, self._heartbeat), name="ollamux-tasks-beat"
            ),
            asyncio.create_task(
                self._every(self.config.sweep_interval_s, self._sweep), name="ollamux-tasks-sweep"
            ),
        ]

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        self._loops = []
        await self.writer.stop()
        await self.store.close()

    # -- request events -----------------------------------------------------------------

    async def may_use(self, task_id: str, owner: str) -> bool:
        """Whether ``owner`` may (re)use ``task_id``: not when another key holds it.

        When the store cannot say, the request goes on; the store's own write still never
        overwrites another key's task."""
        for exchange in self.live:
            run: Run | None = exchange.state.get("tasks")
            if exchange.task_id == task_id and run is not None and run.owner != owner:
                return False
        pending = self.writer.pending_record(task_id)
        if pending is not None:
            return pending.owner == owner
        try:
            found = await asyncio.wait_for(self.store.owner(task_id), _CLAIM_TIMEOUT_S)
        except Exception as exc:
            self.writer.note_failure(exc)
            return True
        return found is None or found == owner

    def begin(self, exchange: Exchange, owner: str) -> None:
        run = Run(self, owner, exchange.created, asyncio.current_task(self._loop))
        run.message = "waiting for a backend"  # PENDING, queued (``note`` without its checks)
        exchange.state["tasks"] = run
        self.live.add(exchange)
        self.writer.put(exchange.task_id, exchange)  # snapshotted when written

    def record(self, exchange: Exchange, state: str, stage: str, message: str) -> None:
        """Note the task's new status and file it with the writer (never waits)."""
        run: Run | None = exchange.state.get("tasks")
        if run is not None:
            self.note(exchange, run, state, stage, message)

    def note(self, exchange: Exchange, run: Run, state: str, stage: str, message: str) -> None:
        """``record`` for a request whose ``Run`` the caller holds already."""
        run.state = state
        run.stage = stage
        run.message = message
        if run.changed is not None:
            run.changed.set()
        if state in LIVE_STATES:
            self.writer.put(exchange.task_id, exchange)  # snapshotted when written
        else:
            # The end state is final: snapshot now, so that the writer does not keep the
            # finished request (and everything it references) alive until the next batch.
            self.writer.put(exchange.task_id, self._snapshot(exchange, run))

    def snapshot(self, exchange: Exchange) -> TaskRecord:
        """The task's status document as of now, ready for the store (as JSON text; its
        dict is decoded only if someone reads it)."""
        return self._snapshot(exchange, exchange.state["tasks"])

    def _snapshot(self, exchange: Exchange, run: Run) -> TaskRecord:
        state = run.state
        ttl = self.config.ttl_running_s if state in LIVE_STATES else self.config.ttl_done_s
        now = time.time()
        progress = progress_text(exchange, run.final)
        text = status_text(exchange, state, run.stage, run.message, progress, now)
        return TaskRecord(exchange.task_id, run.owner, state, run.created, now + ttl, text=text)

    def end(self, exchange: Exchange) -> None:
        self.live.discard(exchange)

    # -- loops --------------------------------------------------------------------------

    async def _every(self, interval_s: float, job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await job()
            except Exception:
                log.exception("task tracker loop failed")

    async def _heartbeat(self) -> None:
        """Refresh every RUNNING task: chunks so far, a new timestamp, a fresh TTL."""
        for exchange in list(self.live):
            run: Run | None = exchange.state.get("tasks")
            if run is not None and run.state == "RUNNING":
                self.record(exchange, run.state, run.stage, run.message)

    async def _sweep(self) -> None:
        try:
            removed = await self.store.sweep(time.time())
        except Exception as exc:
            log.debug("task sweep skipped: %s", exc)
            return
        if removed:
            log.debug("task sweep removed %d expired entries", removed)


def failure_reason(exchange: Exchange) -> str:
    """Why a request failed: the error the core noted, else the backend's error answer."""
    if exchange.error:
        return exchange.error
    run: Run | None = exchange.state.get("tasks")
    if run is not None and run.error_body is not None and run.error_body.body:
        return f"HTTP {exchange.status}: {upstream_error_message(run.error_body.body)}"
    return f"HTTP {exchange.status}"
