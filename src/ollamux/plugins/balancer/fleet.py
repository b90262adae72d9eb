"""The balancer's per-app state and its request-time decisions: pick a backend (or wait for
one), take and free slots, learn health from how attempts went.

One ``Fleet`` per gateway (``fleet_of``). The backends themselves live in
``gateway.backends``; discovery adds and removes entries there.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref

from ...backend import Backend
from ...config import Config
from ...errors import GatewayError
from ...exchange import Exchange, Outcome
from ...gateway import Gateway
from . import management
from .monitor import Monitor
from .selection import Choice, Verdict, choose
from .settings import discovery
from .waitqueue import Waiter, WaitQueue

# Requests that do not run a model on the backend: they skip concurrency caps and never wait.
_LIGHT_PATHS = frozenset({"/api/show", "/api/version"})
# Requests after which the model sits in the backend's memory.
_INFERENCE_PATHS = frozenset(
    {
        "/api/chat",
        "/api/generate",
        "/api/embed",
        "/api/embeddings",
        "/v1/chat/completions",
        "/v1/completions",
        "/v1/embeddings",
        "/v1/responses",
    }
)
# Outcomes that mean the backend itself is in trouble.
_FAILURES = frozenset({Outcome.CONNECT_ERROR, Outcome.TIMEOUT, Outcome.SERVER_ERROR})
_EWMA = 0.2

_FLEETS: weakref.WeakKeyDictionary[Gateway, Fleet] = weakref.WeakKeyDictionary()


def fleet_of(gateway: Gateway) -> Fleet:
    """The gateway's fleet, created on first use."""
    fleet = _FLEETS.get(gateway)
    if fleet is None:
        fleet = _FLEETS[gateway] = Fleet(gateway)
    return fleet


class Fleet:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        routing = gateway.config.routing
        self.queue_timeout_s = routing.queue_timeout_s
        self.busy_cooldown_s = routing.busy_cooldown_s
        self.queue = WaitQueue(routing.max_queue)
        self.monitor = Monitor(self)
        # Until the first discovery scan ends, an unknown model may still turn up: wait.
        self.discovery_ready = discovery(gateway.config) is None
        self.waits = 0
        self.wait_s_total = 0.0
        self.wait_s_avg = 0.0
        self.timeouts = 0
        self.rejected = 0
        self._ordered: list[Backend] = []
        self._publish_gauges()

    def _publish_gauges(self) -> None:
        g = self.gateway.gauges
        g["queue_depth"] = lambda: float(len(self.queue))
        g["queue_oldest_wait_seconds"] = self.queue.oldest_wait_s
        g["queue_wait_seconds_avg"] = lambda: self.wait_s_avg
        g["queue_wait_seconds_total"] = lambda: self.wait_s_total
        g["queue_waits_total"] = lambda: float(self.waits)
        g["queue_timeouts_total"] = lambda: float(self.timeouts)
        g["queue_rejected_total"] = lambda: float(self.rejected)
        g["backends"] = lambda: float(len(self.gateway.backends))
        g["backends_healthy"] = lambda: float(
            sum(1 for b in self.gateway.backends.values() if b.healthy)
        )
        g["backends_in_flight"] = lambda: float(
            sum(b.in_flight for b in self.gateway.backends.values())
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self.monitor.start()

    async def stop(self) -> None:
        await self.monitor.stop()
        for waiter in self.queue:
            self.queue.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(_unavailable("the gateway is shutting down", 1))

    def reconfigure(self, old: Config, new: Config) -> None:
        """The config was reloaded: ``gateway.backends`` already holds the new static
        backends. Take the new routing knobs; forget discovered backends that discovery no
        longer covers or that a static backend now names; let waiters look again."""
        routing = new.routing
        self.queue_timeout_s = routing.queue_timeout_s
        self.busy_cooldown_s = routing.busy_cooldown_s
        self.queue.limit = routing.max_queue
        self.monitor.configure(new)
        backends = self.gateway.backends
        static_urls = {b.url for b in backends.values() if not b.discovered}
        for name, b in list(backends.items()):
            if b.discovered and (b.url in static_urls or not self._still_covered(b, old, new)):
                del backends[name]
        if discovery(new) is not None and discovery(new) != discovery(old):
            self.discovery_ready = False  # until the new range has been scanned once
        elif discovery(new) is None:
            self.discovery_ready = True
        self.fleet_changed()
        self.dispatch(settle=True)

    def _still_covered(self, backend: Backend, old: Config, new: Config) -> bool:
        """Whether a discovered backend is still inside the (possibly new) discovery range;
        unchanged discovery settings keep it either way."""
        if discovery(new) == discovery(old):
            return True
        return backend.url in self.monitor.range_urls()

    # -- selection ----------------------------------------------------------------------

    async def select(self, exchange: Exchange) -> Backend | None:
        """The backend for the next attempt of ``exchange`` (counted in flight), None when
        every candidate was tried; raises 404 / 503 / 400 as ``GatewayError``."""
        if exchange.path in management.PATHS:
            return self._take(management.target(self.gateway, exchange))
        capped = not _is_light(exchange)
        choice = self._choose(exchange, capped)
        verdict = choice.verdict
        if verdict is Verdict.PICKED and (not capped or not self.queue or self.queue.full):
            return self._take(choice.backend)
        if verdict is Verdict.PICKED or verdict is Verdict.FULL:
            return await self._wait(exchange)
        if verdict is Verdict.EXHAUSTED:
            return None
        if not self.discovery_ready:
            return await self._wait(exchange)
        raise self._refusal(exchange, verdict)

    def ordered(self) -> list[Backend]:
        """The backends in name order (what ``choose`` needs), cached; rebuilt when the
        fleet changes size or ``fleet_changed`` says so."""
        if len(self._ordered) != len(self.gateway.backends):
            self.fleet_changed()
        return self._ordered

    def fleet_changed(self) -> None:
        self._ordered = sorted(self.gateway.backends.values(), key=lambda b: b.name)

    def _choose(self, exchange: Exchange, capped: bool = True) -> Choice:
        return choose(
            self.ordered(),
            exchange.model,
            exchange.tried,
            capped,
            time.monotonic(),
        )

    def _take(self, backend: Backend | None) -> Backend | None:
        if backend is not None:
            backend.in_flight += 1
        return backend

    def _refusal(self, exchange: Exchange, verdict: Verdict) -> GatewayError:
        if verdict is Verdict.UNKNOWN_MODEL:
            return GatewayError(
                404,
                f"model '{exchange.model_requested or exchange.model}' not found",
                code="model_not_found",
                param="model",
            )
        if verdict is Verdict.DRAINING:
            return _unavailable(f"every backend serving '{exchange.model}' is draining", 5)
        return _unavailable("no backend is available", 1)

    # -- waiting ------------------------------------------------------------------------

    async def _wait(self, exchange: Exchange) -> Backend | None:
        """Queue ``exchange`` until ``dispatch`` hands it a backend, or time out (503)."""
        if self.queue.full:
            self.rejected += 1
            raise _unavailable("too many requests are waiting for a backend", self._retry_after())
        waiter = self.queue.add(exchange)
        self.dispatch()
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                return await waiter.future
        except TimeoutError:
            if _granted(waiter):
                return waiter.future.result()
            self.queue.remove(waiter)
            self.timeouts += 1
            raise _unavailable(
                f"no backend became free within {self.queue_timeout_s:g} s", self._retry_after()
            ) from None
        except asyncio.CancelledError:
            # The client went away: leave the queue; hand back a backend granted meanwhile.
            self.queue.remove(waiter)
            if _granted(waiter):
                backend = waiter.future.result()
                if backend is not None:
                    backend.in_flight = max(0, backend.in_flight - 1)
                    self.dispatch()
            raise
        finally:
            self._record_wait(exchange, time.monotonic() - waiter.since)

    def _record_wait(self, exchange: Exchange, waited_s: float) -> None:
        self.waits += 1
        self.wait_s_total += waited_s
        self.wait_s_avg += _EWMA * (waited_s - self.wait_s_avg)
        mine = exchange.state.setdefault("balancer", {})
        mine["queued_ms"] = mine.get("queued_ms", 0) + int(waited_s * 1000)

    def _retry_after(self) -> int:
        return max(1, math.ceil(self.wait_s_avg))

    def dispatch(self, settle: bool = False) -> None:
        """Hand free backends to waiters, in queue order. Called whenever a slot frees, a
        backend becomes healthy or undrained, a cool-down ends, or the fleet changes.

        Stops early once no backend has room, unless ``settle``: then every waiter is
        looked at, so those whose model vanished (or never existed) get their answer now.
        """
        if not len(self.queue):
            return
        free = self._free_slots()
        for waiter in self.queue:
            if not settle and free <= 0:
                break
            if waiter.future.done():
                self.queue.remove(waiter)
                continue
            choice = self._choose(waiter.exchange)
            verdict = choice.verdict
            if verdict is Verdict.PICKED:
                self.queue.remove(waiter)
                waiter.future.set_result(self._take(choice.backend))
                free -= 1
            elif verdict is Verdict.EXHAUSTED:
                self.queue.remove(waiter)
                waiter.future.set_result(None)
            elif verdict is not Verdict.FULL and self.discovery_ready:
                self.queue.remove(waiter)
                waiter.future.set_exception(self._refusal(waiter.exchange, verdict))

    def _free_slots(self) -> int:
        now = time.monotonic()
        return sum(
            b.max_concurrency - b.in_flight
            for b in self.gateway.backends.values()
            if not b.draining and b.in_flight < b.max_concurrency and b.busy_until <= now
        )

    # -- after an attempt ---------------------------------------------------------------

    def release(self, exchange: Exchange, backend: Backend, outcome: Outcome) -> None:
        """Free the slot and learn from the outcome."""
        backend.in_flight = max(0, backend.in_flight - 1)
        if outcome in _FAILURES:
            self.mark_failed(backend, f"{outcome}: {exchange.error or exchange.path}")
        elif outcome is Outcome.BUSY:
            backend.busy_until = time.monotonic() + self.busy_cooldown_s
            asyncio.get_running_loop().call_later(self.busy_cooldown_s, self.dispatch)
        elif outcome is Outcome.OK and exchange.model and exchange.path in _INFERENCE_PATHS:
            backend.loaded_models.add(exchange.model)
        self.dispatch()

    def mark_failed(self, backend: Backend, reason: str) -> None:
        """Unhealthy at once; only a successful probe brings it back."""
        backend.healthy = False
        backend.failures += 1
        backend.last_error = reason
        self.monitor.failed(backend)

    # -- admin --------------------------------------------------------------------------

    def set_draining(self, backend: Backend, draining: bool) -> None:
        backend.draining = draining
        if not draining:
            self.dispatch()

    def listing_backends(self) -> list[Backend]:
        """Backends to merge listings from: the healthy ones, or all when none is."""
        live = [b for b in self.gateway.backends.values() if not b.draining]
        return [b for b in live if b.healthy] or live


def _is_light(exchange: Exchange) -> bool:
    return (
        exchange.model is None
        or exchange.path in _LIGHT_PATHS
        or exchange.path.startswith("/v1/models")
    )


def _granted(waiter: Waiter) -> bool:
    f = waiter.future
    return f.done() and not f.cancelled() and f.exception() is None


def _unavailable(message: str, retry_after: int) -> GatewayError:
    return GatewayError(503, message, headers={"Retry-After": str(retry_after)})
