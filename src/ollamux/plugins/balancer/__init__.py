"""The ``balancer`` built-in plugin: slots and the wait queue (``ollamux_select_backend``).

- ``queue``: per-app state; takes a backend for each attempt with the selection policy
  (``ollamux_selection_policy``, the ``selection`` plugin's by default), makes requests wait
  when every candidate is full, frees slots and wakes waiters.
- ``waitqueue``: the priority FIFO.
- ``management``: pull/delete/create/copy/push only to a named backend (or all): a
  routing rule of its own, outside the policy and the queue.

Health, discovery and the admin routes belong to the ``health`` and ``fleet_admin``
plugins; the events they send (``ollamux_backend_changed``, ``ollamux_fleet_changed``) wake
the waiters here. See docs/routing.md.
"""

from __future__ import annotations

from collections.abc import Awaitable

from aiohttp import web

from ...backend import Backend
from ...config import Config
from ...exchange import Exchange, Outcome
from ...gateway import Gateway
from ...hookspecs import hookimpl
from . import management
from .queue import slots_of


@hookimpl
async def ollamux_startup(gateway: Gateway) -> None:
    await slots_of(gateway).resolve_policy()


@hookimpl
def ollamux_shutdown(gateway: Gateway) -> None:
    slots_of(gateway).stop()


@hookimpl
async def ollamux_config_reloaded(gateway: Gateway, new: Config) -> None:
    slots = slots_of(gateway)
    await slots.resolve_policy()
    slots.reconfigure(new)


@hookimpl
def ollamux_backend_changed(gateway: Gateway) -> None:
    slots_of(gateway).dispatch()


@hookimpl
def ollamux_fleet_changed(gateway: Gateway) -> None:
    slots = slots_of(gateway)
    slots.fleet.backends_changed()
    slots.dispatch(settle=True)


@hookimpl
async def ollamux_respond(exchange: Exchange) -> web.StreamResponse | None:
    if exchange.path in management.FAN_OUT_PATHS and management.wants_all(exchange):
        targets = management.fan_out_targets(exchange.gateway)
        return await management.respond_all(exchange, targets)
    return None


@hookimpl(trylast=True)
async def ollamux_select_backend(exchange: Exchange) -> Backend | None:
    return await slots_of(exchange.gateway).select(exchange)


@hookimpl(trylast=True)
def ollamux_backend_released(
    exchange: Exchange, backend: Backend, outcome: Outcome
) -> Awaitable[None] | None:
    # trylast: the slot is handed on after ``health`` learnt from the outcome.
    gateway = exchange.gateway
    slots_of(gateway).release(backend, outcome)
    if outcome is Outcome.OK and exchange.path in management.PATHS:
        return gateway.hooks.backend_models_changed(gateway, backend)
    return None
