"""The ``jobs`` built-in plugin: asynchronous jobs, persisted, run through the request path.

Clients submit a request and get an id at once; workers run it later through this
gateway's own hook chain (task id = job id) and store the complete answer. Stored in
SQLite (default) or Redis (shared by several instances). Also serves the web page at
``/`` (for browsers) and ``/list``. See docs/jobs.md.
"""

from __future__ import annotations

from aiohttp import web

from ...backend import Backend
from ...exchange import Exchange
from ...gateway import Gateway
from ...hookspecs import hookimpl
from .routes import JOBS, add_routes
from .runner import INTERNAL_HEADER
from .service import JobsService


def _service(gateway: Gateway) -> JobsService:
    assert gateway.app is not None
    return gateway.app[JOBS]


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    service = JobsService(gateway)
    add_routes(app, service)

    async def stop_workers(_app: web.Application) -> None:
        await service.stop_workers()

    app.on_shutdown.append(stop_workers)


@hookimpl
async def ollamux_startup(gateway: Gateway) -> None:
    await _service(gateway).start()


@hookimpl
async def ollamux_shutdown(gateway: Gateway) -> None:
    await _service(gateway).stop()


@hookimpl
def ollamux_request_started(exchange: Exchange) -> None:
    """Mark the requests our workers make (internal token + a running job's id)."""
    gateway = exchange.gateway
    if exchange.headers.get(INTERNAL_HEADER) != gateway.internal_token:
        return
    task_id = exchange.headers.get("X-Task-Id", "")
    if task_id in _service(gateway).runner.running:
        exchange.state["jobs"] = task_id


@hookimpl
def ollamux_upstream_started(exchange: Exchange, backend: Backend) -> None:
    """Remember which backend answers a job, for its status document."""
    job_id = exchange.state.get("jobs")
    if job_id is not None:
        _service(exchange.gateway).runner.backends[job_id] = backend.name
