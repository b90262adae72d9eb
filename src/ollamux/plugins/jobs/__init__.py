"""The ``jobs`` built-in plugin: asynchronous jobs, persisted, run through the request path.

Clients submit a request and get an id at once; workers run it later through this
gateway's own hook chain, in-process and as the job's owner (``gateway.dispatch``; task id
= job id), and store the complete answer. Stored in
SQLite (default) or Redis (shared by several instances). Also serves the web page at
``/`` (for browsers) and ``/list``. See docs/jobs.md.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from ...config import ConfigSection
from ...exchange import Exchange, Principal
from ...gateway import Gateway
from ...hookspecs import hookimpl
from . import detach
from .routes import JOBS, add_routes
from .service import JobsService
from .settings import SECTION


def _service(gateway: Gateway) -> JobsService:
    assert gateway.app is not None
    return gateway.app[JOBS]


@hookimpl
def ollamux_config_section() -> ConfigSection:
    return SECTION


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    service = JobsService(gateway)
    add_routes(gateway, app, service)

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
def ollamux_respond(exchange: Exchange) -> Awaitable[web.StreamResponse] | None:
    """``Prefer: respond-async``: 202 and a job (``detach.py``). Plain (not ``async``): for
    every other request there is nothing to await."""
    if not detach.wants_async(exchange):
        return None
    return detach.detach(exchange, _service(exchange.gateway))


@hookimpl
async def ollamux_cancel_task(gateway: Gateway, task_id: str, principal: Principal) -> bool | None:
    """``DELETE /tasks/{id}`` of a job: cancel it in the store."""
    if gateway.app is None or JOBS not in gateway.app:
        return None
    return await detach.cancel_queued(gateway.app[JOBS], task_id, principal)
