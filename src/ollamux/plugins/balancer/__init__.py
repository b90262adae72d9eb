"""The ``balancer`` built-in plugin: the fleet of backends and the choice among them.

- ``fleet``: per-app state; selection with a wait queue; health learnt from attempts.
- ``selection``: the O(backends) choice; ``waitqueue``: the priority FIFO.
- ``probe`` / ``monitor``: health probes with backoff and port-range discovery.
- ``management``: pull/delete/create/copy/push only to a named backend (or all).
- ``admin``: ``/ollamux/backends``, ``/ollamux/health``, drain/undrain.

See docs/routing.md.
"""

from __future__ import annotations

from aiohttp import web

from ...backend import Backend
from ...config import Config, ConfigSection
from ...exchange import Exchange, Outcome
from ...gateway import Gateway
from ...hookspecs import hookimpl
from . import admin, management
from .fleet import fleet_of
from .settings import SECTION


@hookimpl
def ollamux_config_section() -> ConfigSection:
    return SECTION


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    admin.register(gateway.routes, fleet_of(gateway))


@hookimpl
async def ollamux_startup(gateway: Gateway) -> None:
    await fleet_of(gateway).start()


@hookimpl
async def ollamux_shutdown(gateway: Gateway) -> None:
    await fleet_of(gateway).stop()


@hookimpl
def ollamux_config_reloaded(gateway: Gateway, old: Config, new: Config) -> None:
    fleet_of(gateway).reconfigure(old, new)


@hookimpl
async def ollamux_respond(exchange: Exchange) -> web.StreamResponse | None:
    if exchange.path in management.FAN_OUT_PATHS and management.wants_all(exchange):
        targets = management.fan_out_targets(exchange.gateway)
        return await management.respond_all(exchange, targets)
    return None


@hookimpl(trylast=True)
def ollamux_fanout_backends(exchange: Exchange) -> list[Backend]:
    return fleet_of(exchange.gateway).listing_backends()


@hookimpl(trylast=True)
async def ollamux_select_backend(exchange: Exchange) -> Backend | None:
    return await fleet_of(exchange.gateway).select(exchange)


@hookimpl
def ollamux_backend_released(exchange: Exchange, backend: Backend, outcome: Outcome) -> None:
    fleet_of(exchange.gateway).release(exchange, backend, outcome)
