"""Watching a task: ``GET /tasks/{id}/events``, its status document as a server-sent event
each time it changes, until a final state.

A task running on this instance is followed directly (its document is recomputed when its
state changes and, while someone watches, every ``WATCH_TICK_S`` for the queue position and
the tokens). A task running elsewhere is followed through the Redis bus (``bus.py``): the
watcher asks the instance running it to publish its documents; with another store, the
store is read every ``POLL_S``. Nothing of this runs for a task nobody watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp_sse import sse_response

from ...exchange import principal_of
from ...permissions import TASKS_READ
from ...pipeline import GATEWAY
from .document import LIVE_STATES, is_valid_task_id
from .tracker import Run, Tracker

WATCH_TICK_S = 0.1  # how often a watched running task's document is looked at
POLL_S = 0.25  # how often the store is read for a task running elsewhere
WATCH_RENEW_S = 2.0  # how often a remote watcher repeats its "watch" message
PUMP_LEASE_S = 6.0  # how long an instance publishes for one "watch" message
GONE_S = 30.0  # a watched task whose document is gone this long: the feed ends

# Fields whose change makes a new event (the timestamp and event id alone do not).
_FIELDS = ("state", "stage", "message")
_EXT_FIELDS = ("backend", "chunks", "tokens", "queue_position", "status", "attempts")


def _key(doc: dict[str, Any]) -> tuple[Any, ...]:
    ext = doc.get("extensions") or {}
    return tuple(doc.get(k) for k in _FIELDS) + tuple(ext.get(k) for k in _EXT_FIELDS)


def final(doc: dict[str, Any]) -> bool:
    return doc.get("state") not in LIVE_STATES


async def find(tracker: Tracker, task_id: str) -> tuple[str, dict[str, Any]] | None:
    """``(owner, document)``: the newest known, from this instance or the store."""
    exchange = tracker.find_live(task_id)
    if exchange is not None:
        run: Run = exchange.state["tasks"]
        return run.owner, tracker.snapshot(exchange).doc
    newer = tracker.writer.pending_record(task_id)
    if newer is not None:
        return newer.owner, newer.doc
    return await tracker.store.get(task_id)


async def requested(
    request: web.Request,
) -> tuple[str, tuple[str, dict[str, Any]] | None] | web.Response:
    """The task id of a ``/tasks/{task_id}/...`` route and what ``find`` knows of it, or
    the answer to give instead: 400 for an invalid id, 503 when the store cannot be read."""
    from .routes import TRACKER, error_response, unavailable

    task_id = request.match_info["task_id"]
    if not is_valid_task_id(task_id):
        return error_response(400, "invalid task id")
    try:
        return task_id, await find(request.app[TRACKER], task_id)
    except Exception as exc:
        return unavailable(exc)


async def _local(tracker: Tracker, task_id: str) -> AsyncIterator[dict[str, Any]]:
    """Documents of a task running here, until it ends (or leaves this instance)."""
    exchange = tracker.find_live(task_id)
    if exchange is None:
        return
    run: Run = exchange.state["tasks"]
    changed = run.changed = run.changed or asyncio.Event()
    last: tuple[Any, ...] | None = None
    while True:
        changed.clear()
        doc = tracker.snapshot(exchange).doc
        key = _key(doc)
        if key != last:
            last = key
            yield doc
        if final(doc) or exchange not in tracker.live:
            return  # ended; or answered but not over (detached: its job goes on elsewhere)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), WATCH_TICK_S)


async def feed(tracker: Tracker, task_id: str) -> AsyncIterator[dict[str, Any]]:
    """Every new document of ``task_id`` until a final one (the first: the current one)."""
    last: tuple[Any, ...] | None = None
    renew_at = missing_since = 0.0
    bus = tracker.bus
    async with contextlib.AsyncExitStack() as stack:
        pubsub = None
        while True:
            if tracker.find_live(task_id) is not None:
                async for doc in _local(tracker, task_id):
                    last = _key(doc)
                    yield doc
                    if final(doc):
                        return
                continue  # ended here: the final document is read below
            found = await find(tracker, task_id)
            if found is None:
                missing_since = missing_since or time.monotonic()
                if time.monotonic() - missing_since > GONE_S:
                    return  # expired (or never written): nothing more will come
            else:
                missing_since = 0.0
                doc = found[1]
                if _key(doc) != last:
                    last = _key(doc)
                    yield doc
                if final(doc):
                    return
            if pubsub is None and bus is not None and bus.ready.is_set():
                # Running elsewhere (or not yet): its instance publishes what it does.
                pubsub = await stack.enter_async_context(bus.subscribe(task_id))
                continue  # read the store once more: the subscription may have come late
            if pubsub is None:
                await asyncio.sleep(POLL_S)
                continue
            now = time.monotonic()
            if now >= renew_at:
                renew_at = now + WATCH_RENEW_S
                with contextlib.suppress(Exception):
                    await bus.publish({"op": "watch", "task_id": task_id})  # type: ignore[union-attr]
            deadline = now + POLL_S * 4
            while time.monotonic() < deadline:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=POLL_S)
                if message is None:
                    break
                try:
                    doc = json.loads(message["data"])
                except ValueError:
                    continue
                if _key(doc) != last:
                    last = _key(doc)
                    yield doc
                if final(doc):
                    return


class Pumps:
    """Publishing the documents of tasks running here that someone watches elsewhere."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self._until: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def watch(self, task_id: str) -> None:
        if self.tracker.find_live(task_id) is None:
            return
        running = task_id in self._until
        self._until[task_id] = time.monotonic() + PUMP_LEASE_S
        if not running:
            task = asyncio.create_task(self._pump(task_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, task_id: str) -> None:
        bus = self.tracker.bus
        try:
            async for doc in _local(self.tracker, task_id):
                if bus is None or time.monotonic() > self._until.get(task_id, 0):
                    return
                with contextlib.suppress(Exception):
                    await bus.publish_doc(task_id, doc)
        finally:
            self._until.pop(task_id, None)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def watch_task(request: web.Request) -> web.StreamResponse:
    """``GET /tasks/{id}/events``: ``event: status`` with the document as ``data``."""
    from .routes import TRACKER, error_response

    tracker = request.app[TRACKER]
    asked = await requested(request)
    if isinstance(asked, web.Response):
        return asked
    task_id, found = asked
    gateway = request.app[GATEWAY]
    if found is None or not await gateway.allowed(principal_of(request), TASKS_READ, found[0]):
        return error_response(404, f"task {task_id} not found")
    async with sse_response(request, ping_interval=15, sep="\n") as sse:
        async for doc in feed(tracker, task_id):
            await sse.send(json.dumps(doc), event="status", id=str(doc.get("event_id", "")))
    return sse
