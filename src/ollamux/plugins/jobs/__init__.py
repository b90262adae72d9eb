"""The ``jobs`` built-in plugin: asynchronous jobs, persisted, run through the request path.

Clients submit a request and get an id at once; workers run it later through this
gateway's own hook chain, in-process and as the job's owner (``gateway.dispatch``; task id
= job id), and store the complete answer. Stored in
SQLite (default) or Redis (shared by several instances). Also serves the web page at
``/`` (for browsers) and ``/list``. See docs/jobs.md.
"""

from __future__ import annotations

from aiohttp import web

from ...config import ConfigSection
from ...gateway import Gateway
from ...hookspecs import hookimpl
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
