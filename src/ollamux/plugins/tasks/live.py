"""Reaching tasks while they run: cancel, watch, kept output (the routes and their wiring).

``start``/``stop`` set up, for one tracker, the kept outputs (``output.py``) and, when the
task store is Redis, the bus between instances (``bus.py``) with the publishers of watched
documents (``events.Pumps``). ``keep`` puts a ``KeepSink`` on a request that asks for its
output to be kept (``X-Ollamux-Keep: true``; jobs ask for it).
"""

from __future__ import annotations

from typing import Any

from ...exchange import Exchange, ResponseHead
from ...gateway import Gateway
from ...permissions import TASKS_CANCEL, TASKS_READ
from ...protocol import KEEP
from .cancel import cancel_here, cancel_task
from .events import Pumps, watch_task
from .output import KeepSink, Outputs, read_output
from .progress import FinalLine
from .settings import TasksConfig
from .tracker import Run, Tracker

_PUMPS: dict[int, Pumps] = {}

# Answers whose final figures (durations, counts) are worth reading.
_GENERATIONS = frozenset({"/api/chat", "/api/generate", "/v1/chat/completions", "/v1/completions"})


def add_routes(gateway: Gateway) -> None:
    r = gateway.routes
    r.add(
        "DELETE",
        # Not "status": DELETE /tasks/status stays a 405 (GET /tasks/status is the listing).
        "/tasks/{task_id:(?!status$)[^/]+}",
        cancel_task,
        action=TASKS_CANCEL,
        openapi={"summary": "cancel a queued or running task, on any instance"},
    )
    r.add(
        "GET",
        "/tasks/{task_id}/events",
        watch_task,
        action=TASKS_READ,
        openapi={"summary": "the task's status document as server-sent events, until it ends"},
    )
    r.add(
        "GET",
        "/tasks/{task_id}/output",
        read_output,
        action=TASKS_READ,
        openapi={"summary": "the task's kept output from chunk `from`, then live until the end"},
    )


async def start(tracker: Tracker, config: TasksConfig) -> None:
    redis_url = config.redis_url if config.store == "redis" else None
    tracker.outputs = Outputs(
        int(config.output_max_mb * 1024 * 1024), config.ttl_done_s, redis_url, config.redis_prefix
    )
    await tracker.outputs.start()
    if redis_url is None:
        return
    from .bus import TaskBus

    pumps = _PUMPS[id(tracker)] = Pumps(tracker)

    async def on_message(message: dict[str, Any]) -> None:
        task_id = str(message.get("task_id", ""))
        if message.get("op") == "cancel":
            cancel_here(tracker, task_id, str(message.get("by", "")))
        elif message.get("op") == "watch":
            pumps.watch(task_id)

    tracker.bus = TaskBus(redis_url, config.redis_prefix, on_message)
    await tracker.bus.start()


async def stop(tracker: Tracker) -> None:
    pumps = _PUMPS.pop(id(tracker), None)
    if pumps is not None:
        await pumps.stop()
    if tracker.bus is not None:
        await tracker.bus.stop()
    if tracker.outputs is not None:
        await tracker.outputs.stop()


def keep(tracker: Tracker, exchange: Exchange, owner: str) -> None:
    """Keep the output of ``exchange`` when it asks for it."""
    if tracker.outputs is None or exchange.headers.get(KEEP, "").lower() != "true":
        return
    recorder = tracker.outputs.begin(exchange.task_id, owner)
    exchange.sink = KeepSink(exchange.sink, recorder, tracker.outputs)


def ended(tracker: Tracker, exchange: Exchange) -> None:
    """The request ended: its kept output (if any) is complete."""
    if tracker.outputs is not None:
        tracker.outputs.end(exchange.sink)


def final_line(exchange: Exchange, head: ResponseHead) -> FinalLine | None:
    """A transform reading the backend's final figures from a generation's answer."""
    run: Run | None = exchange.state.get("tasks")
    if run is None or head.status >= 400 or exchange.path not in _GENERATIONS:
        return None
    line = run.final = FinalLine()
    return line
