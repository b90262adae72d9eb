"""The ``tasks`` built-in plugin: a task id and a live status for every request.

Every request gets a task id (``X-Task-Id``, given or generated) and goes PENDING ->
RUNNING -> SUCCESS | FAILED | CANCELLED; each change, and a heartbeat while it runs, is
written to the configured store (SQLite, Redis or memory) in the background. The status
API (``/tasks/status``) reads it back. See docs/tasks.md.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from ...backend import Backend
from ...config import ConfigSection
from ...errors import GatewayError
from ...exchange import Exchange, ResponseHead, TaskState, new_task_id
from ...gateway import Gateway
from ...hookspecs import hookimpl
from ...protocol import TASK_ID
from ...transforms import ResponseTransform
from . import live
from .document import MAX_TASK_ID, is_valid_task_id
from .routes import TRACKER, add_routes
from .settings import SECTION, settings
from .tracker import ErrorCapture, Run, Tracker, failure_reason

HEADER = TASK_ID


def _tracker(gateway: Gateway) -> Tracker | None:
    return gateway.app.get(TRACKER) if gateway.app is not None else None


@hookimpl
def ollamux_config_section() -> ConfigSection:
    return SECTION


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    app[TRACKER] = Tracker(settings(gateway.config))
    add_routes(gateway)
    live.add_routes(gateway)


@hookimpl
async def ollamux_startup(gateway: Gateway) -> None:
    tracker = _tracker(gateway)
    if tracker is None:
        return
    await tracker.start()
    await live.start(tracker, tracker.config)
    gateway.gauges["tasks_live"] = lambda: float(len(tracker.live))
    gateway.gauges["tasks_pending_writes"] = lambda: float(tracker.writer.pending)
    gateway.gauges["tasks_store_up"] = lambda: 1.0 if tracker.writer.healthy else 0.0
    gateway.gauges["task_store_errors_total"] = lambda: float(tracker.writer.failures)


@hookimpl
async def ollamux_shutdown(gateway: Gateway) -> None:
    tracker = _tracker(gateway)
    if tracker is not None:
        await live.stop(tracker)
        await tracker.stop()


@hookimpl
def ollamux_request_started(exchange: Exchange) -> Awaitable[None] | None:
    """Take or make the task id, refuse a bad or foreign one, record PENDING.

    Plain (not ``async``) for the common case of a generated id: only a task id brought by
    the client needs the store's word on its owner, and only then is there something to
    await."""
    tracker = _tracker(exchange.gateway)
    if tracker is None:
        return None
    if exchange.request is None and exchange.task_id:
        # Chosen by the gateway itself (``gateway.dispatch``: a job's id), not by a client:
        # the work is the owner's whatever another key did with that id before, so no
        # claim is asked for (a client squatting the id cannot make the job fail).
        _start(tracker, exchange, exchange.task_id)
        return None
    given = exchange.headers.get(HEADER)
    if given is None:
        _start(tracker, exchange, new_task_id())
        return None
    if not is_valid_task_id(given):
        raise GatewayError(
            400,
            f"invalid {HEADER}: use 1 to {MAX_TASK_ID} characters from A-Z a-z 0-9 . _ : -",
            param=HEADER,
        )
    return _claim(tracker, exchange, given)


async def _claim(tracker: Tracker, exchange: Exchange, task_id: str) -> None:
    if not await tracker.may_use(task_id, exchange.principal.name):
        raise GatewayError(409, f"task id {task_id} belongs to another API key", param=HEADER)
    _start(tracker, exchange, task_id)


def _start(tracker: Tracker, exchange: Exchange, task_id: str) -> None:
    exchange.task_id = task_id
    exchange.response_headers[HEADER] = task_id
    tracker.begin(exchange, exchange.principal.name)
    live.keep(tracker, exchange, exchange.principal.name)


@hookimpl
def ollamux_attempt_started(exchange: Exchange, backend: Backend) -> None:
    """A backend was chosen and the request is on its way: RUNNING, "forwarded"."""
    run: Run | None = exchange.state.get("tasks")
    if run is None:
        return
    run.tracker.note(exchange, run, "RUNNING", "forwarded", f"sent to backend {backend.name}")


@hookimpl
def ollamux_upstream_started(exchange: Exchange, backend: Backend, head: ResponseHead) -> None:
    run: Run | None = exchange.state.get("tasks")
    if run is None:
        return
    if exchange.stream and head.status < 400:
        run.tracker.note(exchange, run, "RUNNING", "streaming", "stream alive")
    else:
        message = f"backend {backend.name} answered {head.status}"
        run.tracker.note(exchange, run, "RUNNING", "forwarded", message)


@hookimpl
def ollamux_transform_response(exchange: Exchange, head: ResponseHead) -> ResponseTransform | None:
    """Keep the start of an error answer so a FAILED task can say why; read a generation's
    final figures (``progress.py``)."""
    run: Run | None = exchange.state.get("tasks")
    if run is None:
        return None
    if head.status < 400:
        return live.final_line(exchange, head)
    run.error_body = ErrorCapture()
    return run.error_body


@hookimpl
def ollamux_request_finished(exchange: Exchange) -> None:
    run: Run | None = exchange.state.get("tasks")
    if run is None:
        return
    tracker = run.tracker
    tracker.end(exchange)
    live.ended(tracker, exchange)
    if exchange.state.get("detached"):  # answered 202: a job runs it later, same task id
        tracker.note(exchange, run, "PENDING", "queued", "detached: waiting for a worker")
    elif exchange.outcome is TaskState.CANCELLED:
        reason = exchange.error or "client disconnected"
        tracker.note(exchange, run, "CANCELLED", "cancelled", reason)
    elif exchange.outcome is TaskState.SUCCESS and exchange.status < 400:
        tracker.note(exchange, run, "SUCCESS", "completed", "completed")
    else:
        tracker.note(exchange, run, "FAILED", "failed", failure_reason(exchange))
