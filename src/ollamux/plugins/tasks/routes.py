"""The status API: ``GET /tasks/status/{task_id}`` and ``GET /tasks/status?limit=&state=``.

A caller sees the tasks the ``tasks.read`` permission gives it (by default its own, others'
are 404 as if unknown; admins see all). When the store cannot be read the answer is 503, never a stale guess.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ...dialect import Dialect
from ...errors import GatewayError
from ...exchange import principal_of
from ...gateway import Gateway
from ...permissions import EVERYONE, TASKS_READ
from ...pipeline import GATEWAY
from .document import STATES, is_valid_task_id
from .tracker import Tracker

log = logging.getLogger("ollamux.tasks")

TRACKER: web.AppKey[Tracker] = web.AppKey("ollamux_tasks", Tracker)

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def add_routes(gateway: Gateway) -> None:
    gateway.routes.add(
        "GET",
        "/tasks/status/{task_id}",
        get_task,
        action=TASKS_READ,
        openapi={"summary": "one task's status document"},
    )
    gateway.routes.add(
        "GET",
        "/tasks/status",
        list_tasks,
        action=TASKS_READ,
        openapi={"summary": "recent tasks, newest first"},
    )


def error_response(status: int, message: str, **headers: str) -> web.Response:
    return GatewayError(status, message, headers=headers).response(Dialect.OLLAMA)


_error = error_response


def unavailable(exc: Exception) -> web.Response:
    log.debug("task store read failed: %s", exc)
    return _error(503, "task store unavailable", **{"Retry-After": "1"})


async def _owner_scope(request: web.Request) -> str | None:
    """Whose tasks the caller may list: ``None`` for everyone's, else its own name."""
    principal = principal_of(request)
    if await request.app[GATEWAY].allowed(principal, TASKS_READ, EVERYONE):
        return None
    return principal.name


async def get_task(request: web.Request) -> web.Response:
    tracker = request.app[TRACKER]
    task_id = request.match_info["task_id"]
    if not is_valid_task_id(task_id):
        return _error(400, "invalid task id")
    try:
        found = await tracker.store.get(task_id)
    except Exception as exc:
        return unavailable(exc)
    newer = tracker.writer.pending_record(task_id)
    if newer is not None:
        found = (newer.owner, newer.doc)
    gateway = request.app[GATEWAY]
    if found is None or not await gateway.allowed(principal_of(request), TASKS_READ, found[0]):
        return _error(404, f"task {task_id} not found")
    return web.json_response(found[1])


async def list_tasks(request: web.Request) -> web.Response:
    tracker = request.app[TRACKER]
    try:
        limit = int(request.query.get("limit", DEFAULT_LIMIT))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        return _error(400, f"limit must be an integer from 1 to {MAX_LIMIT}")
    state = request.query.get("state") or None
    if state is not None:
        state = state.upper()
        if state not in STATES:
            return _error(400, f"state must be one of {', '.join(sorted(STATES))}")
    owner = await _owner_scope(request)
    try:
        tasks: list[dict[str, Any]] = await tracker.store.recent(owner, state, limit)
    except Exception as exc:
        return unavailable(exc)
    return web.json_response({"tasks": tasks})
