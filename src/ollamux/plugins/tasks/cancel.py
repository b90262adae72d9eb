"""Cancelling a task from anywhere: ``DELETE /tasks/{id}``.

A request running on this instance is cancelled through the asyncio task running it (its
upstream connection is closed, so Ollama stops generating); a live client hears a 409 in its
dialect (or an error event/line ending its stream). Other instances sharing the Redis store
hear it on the bus (``bus.py``) and do the same for their requests. Work still queued under
that id elsewhere (a detached request's job) is cancelled by the plugin holding it
(``ollamux_cancel_task``). The task ends CANCELLED, saying who cancelled it
(``extensions.cancelled_by``).
"""

from __future__ import annotations

import logging
import time

from aiohttp import web

from ...errors import GatewayError
from ...exchange import principal_of
from ...permissions import TASKS_CANCEL, TASKS_READ
from ...pipeline import GATEWAY
from .events import final, requested
from .store import TaskRecord
from .tracker import Run, Tracker

log = logging.getLogger("ollamux.tasks")


def cancel_here(tracker: Tracker, task_id: str, by: str) -> bool:
    """Cancel the request running here under ``task_id``; whether there was one."""
    exchange = tracker.find_live(task_id)
    if exchange is None:
        return False
    run: Run = exchange.state["tasks"]
    if run.handle is None or run.handle.done():
        return False
    exchange.cancelled_by = by
    run.handle.cancel()
    log.info("task %s cancelled by %s", task_id, by)
    return True


async def cancel_task(request: web.Request) -> web.Response:
    from .routes import TRACKER, error_response

    tracker = request.app[TRACKER]
    gateway = request.app[GATEWAY]
    asked = await requested(request)
    if isinstance(asked, web.Response):
        return asked
    task_id, found = asked
    principal = principal_of(request)
    by = principal.name
    if found is None:
        # No task yet: work queued under that id elsewhere (a job no worker took yet)?
        try:
            queued = await gateway.hooks.cancel_task(gateway, task_id, principal)
        except GatewayError as err:
            return error_response(err.status, err.message)
        if not queued:
            return error_response(404, f"task {task_id} not found")
        return _cancelled(task_id, by)
    if not await gateway.allowed(principal, TASKS_READ, found[0]):
        return error_response(404, f"task {task_id} not found")
    owner, doc = found
    if not await gateway.allowed(principal, TASKS_CANCEL, owner):
        return error_response(403, f"task {task_id} may not be cancelled by this key")
    if final(doc):
        return error_response(409, f"task {task_id} is already {doc.get('state')}")
    try:
        queued = await gateway.hooks.cancel_task(gateway, task_id, principal)
    except GatewayError as err:
        return error_response(err.status, err.message)
    here = cancel_here(tracker, task_id, by)
    if not here and tracker.bus is not None:
        try:
            await tracker.bus.publish({"op": "cancel", "task_id": task_id, "by": by})
        except Exception:
            return error_response(503, "task bus unavailable", **{"Retry-After": "1"})
    if queued and not here:
        # Nothing runs it anywhere: its document says so now.
        _write_cancelled(tracker, task_id, owner, doc, by)
    return _cancelled(task_id, by)


def _cancelled(task_id: str, by: str) -> web.Response:
    return web.json_response(
        {"task_id": task_id, "state": "CANCELLED", "cancelled_by": by}, status=202
    )


def _write_cancelled(
    tracker: Tracker, task_id: str, owner: str, doc: dict[str, object], by: str
) -> None:
    now = time.time()
    ext = dict(doc.get("extensions") or {})  # type: ignore[call-overload]
    ext["cancelled_by"] = by
    new = {
        **doc,
        "state": "CANCELLED",
        "stage": "cancelled",
        "message": f"cancelled by {by}",
        "extensions": ext,
        "timestamp": int(now),
    }
    created = float(doc.get("timestamp") or now)  # type: ignore[arg-type]
    record = TaskRecord(task_id, owner, "CANCELLED", created, now + tracker.config.ttl_done_s, new)
    tracker.writer.put(task_id, record)
