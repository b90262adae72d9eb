"""The ``health`` built-in plugin: which backends there are and how each one is doing.

- ``monitor``: health probes of the static backends (with backoff for failing ones) and
  the port-range discovery scan, in one background loop; ``probe``: one probe.
- Health learnt from attempts (``ollamux_backend_released``): a failure before the first
  byte marks the backend unhealthy at once, Ollama's "busy" cools it down, a model run
  counts as loaded there.
- Listings (``ollamux_fanout_backends``): the healthy backends that are not draining.

It changes ``Backend`` fields and ``gateway.backends`` and announces it with
``ollamux_backend_changed`` / ``ollamux_fleet_changed`` (the ``balancer`` wakes waiters
then). See docs/routing.md.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from ...backend import Backend
from ...config import Config, ConfigSection
from ...endpoints import INFERENCE_PATHS, is_management
from ...exchange import Exchange, Outcome
from ...fleet import fleet_of
from ...gateway import Gateway
from ...hookspecs import hookimpl
from .monitor import Monitor
from .settings import SECTION, discovery

# Outcomes that mean the backend itself is in trouble.
_FAILURES = frozenset({Outcome.CONNECT_ERROR, Outcome.TIMEOUT, Outcome.SERVER_ERROR})
# Requests after which the model sits in the backend's memory.
_INFERENCE_PATHS = INFERENCE_PATHS


class Health:
    """Per-gateway state of the plugin (``health_of``)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.busy_cooldown_s = gateway.config.routing.busy_cooldown_s
        self.monitor = Monitor(gateway)
        g = gateway.gauges
        g["backends"] = lambda: float(len(gateway.backends))
        g["backends_healthy"] = lambda: float(
            sum(1 for b in gateway.backends.values() if b.healthy)
        )
        g["backends_in_flight"] = lambda: float(sum(b.in_flight for b in gateway.backends.values()))

    def learn(self, exchange: Exchange, backend: Backend, outcome: Outcome) -> bool:
        """Learn from how an attempt went; True when the backend just turned unhealthy.

        A model-management request that failed with an answer (a pull of a model the
        registry does not have) says nothing about the backend's health."""
        if outcome is Outcome.SERVER_ERROR and is_management(exchange.path):
            return False
        if outcome in _FAILURES:
            was_healthy = backend.healthy
            self.mark_failed(backend, f"{outcome}: {exchange.error or exchange.path}")
            return was_healthy
        if outcome is Outcome.BUSY:
            backend.busy_until = time.monotonic() + self.busy_cooldown_s
        elif outcome is Outcome.OK and exchange.model and exchange.path in _INFERENCE_PATHS:
            backend.loaded_models.add(exchange.model)
        return False

    def mark_failed(self, backend: Backend, reason: str) -> None:
        """Unhealthy at once; only a successful probe brings it back."""
        backend.healthy = False
        backend.failures += 1
        backend.last_error = reason
        self.monitor.failed(backend)

    def reconfigure(self, old: Config, new: Config) -> None:
        """The config was reloaded: ``gateway.backends`` already holds the new static
        backends. Take the new probe settings and discovery range; forget discovered
        backends that discovery no longer covers or that a static backend now names."""
        self.busy_cooldown_s = new.routing.busy_cooldown_s
        self.monitor.configure(new)
        backends = self.gateway.backends
        static_urls = {b.url for b in backends.values() if not b.discovered}
        for name, b in list(backends.items()):
            if b.discovered and (b.url in static_urls or not self._still_covered(b, old, new)):
                del backends[name]
        fleet = fleet_of(self.gateway)
        fleet.backends_changed()
        if discovery(new) is not None and discovery(new) != discovery(old):
            fleet.discovery_ready = False  # until the new range has been scanned once
        elif discovery(new) is None:
            fleet.discovery_ready = True

    def _still_covered(self, backend: Backend, old: Config, new: Config) -> bool:
        """Whether a discovered backend is still inside the (possibly new) discovery range;
        unchanged discovery settings keep it either way."""
        if discovery(new) == discovery(old):
            return True
        return backend.url in self.monitor.range_urls()

    def listing_backends(self) -> list[Backend]:
        """Backends to merge listings from: the healthy ones, or all when none is."""
        live = [b for b in self.gateway.backends.values() if not b.draining]
        return [b for b in live if b.healthy] or live


def health_of(gateway: Gateway) -> Health:
    """The gateway's health state, created on first use."""
    return gateway.state_of(Health)


@hookimpl
def ollamux_config_section() -> ConfigSection:
    return SECTION


@hookimpl
def ollamux_startup(gateway: Gateway) -> None:
    if discovery(gateway.config) is not None:
        fleet_of(gateway).discovery_ready = False  # until the first scan has ended
    health_of(gateway).monitor.start()


@hookimpl
async def ollamux_shutdown(gateway: Gateway) -> None:
    await health_of(gateway).monitor.stop()


@hookimpl
async def ollamux_config_reloaded(gateway: Gateway, old: Config, new: Config) -> None:
    health_of(gateway).reconfigure(old, new)
    await gateway.hooks.fleet_changed(gateway)


@hookimpl(trylast=True)
def ollamux_fanout_backends(exchange: Exchange) -> list[Backend]:
    return health_of(exchange.gateway).listing_backends()


@hookimpl
async def ollamux_backend_models_changed(gateway: Gateway, backend: Backend) -> None:
    """A pull or delete went through: probe the backend now, so its new model list is
    routed and listed at once."""
    await health_of(gateway).monitor.check(backend)


@hookimpl
def ollamux_backend_released(
    exchange: Exchange, backend: Backend, outcome: Outcome
) -> Awaitable[None] | None:
    # A plain function on the common path (no coroutine per request); only when the
    # backend just turned unhealthy does it hand the dispatcher an event to await.
    gateway = exchange.gateway
    if health_of(gateway).learn(exchange, backend, outcome):
        return gateway.hooks.backend_changed(gateway, backend)
    return None
