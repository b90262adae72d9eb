"""The status API: ``GET /tasks/status/{task_id}`` and ``GET /tasks/status?limit=&state=``.

With auth on, a caller sees only the tasks of its own key (others' are 404, as if unknown);
admin keys see all. When the store cannot be read the answer is 503, never a stale guess.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from ...dialect import Dialect
from ...errors import GatewayError
from ...exchange import principal_of
from .document import STATES, is_valid_task_id
from .tracker import Tracker

log = logging.getLogger("ollamux.tasks")

TRACKER: web.AppKey[Tracker] = web.AppKey("ollamux_tasks", Tracker)

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


def add_routes(app: web.Application) -> None:
    app.router.add_get("/tasks/status/{task_id}", get_task)
    app.router.add_get("/tasks/status", list_tasks)


def _error(status: int, message: str, **headers: str) -> web.Response:
    return GatewayError(status, message, headers=headers).response(Dialect.OLLAMA)


def _unavailable(exc: Exception) -> web.Response:
    log.debug("task store read failed: %s", exc)
    return _error(503, "task store unavailable", **{"Retry-After": "1"})


def _visible_owner(request: web.Request, tracker: Tracker) -> str | web.Response | None:
    """Whose tasks the caller may see: a key name, ``None`` for all, or a 401 answer."""
    principal = principal_of(request)
    if principal.admin:
        return None
    if principal.authenticated:
        return principal.name
    if tracker.auth_configured:
        return _error(401, "an API key is required")
    return None


async def get_task(request: web.Request) -> web.Response:
    tracker = request.app[TRACKER]
    task_id = request.match_info["task_id"]
    if not is_valid_task_id(task_id):
        return _error(400, "invalid task id")
    owner = _visible_owner(request, tracker)
    if isinstance(owner, web.Response):
        return owner
    try:
        found = await tracker.store.get(task_id)
    except Exception as exc:
        return _unavailable(exc)
    newer = tracker.writer.pending_record(task_id)
    if newer is not None:
        found = (newer.owner, newer.doc)
    if found is None or (owner is not None and found[0] != owner):
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
    owner = _visible_owner(request, tracker)
    if isinstance(owner, web.Response):
        return owner
    try:
        tasks: list[dict[str, Any]] = await tracker.store.recent(owner, state, limit)
    except Exception as exc:
        return _unavailable(exc)
    return web.json_response({"tasks": tasks})
