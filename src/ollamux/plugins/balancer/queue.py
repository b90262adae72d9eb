"""The balancer's per-app state and its request-time decisions: take a backend for an
attempt (or wait in the queue for one), free its slot afterwards, wake waiters when
something changes.

One ``Slots`` per gateway (``slots_of``). Which backend is best is the selection policy's
business (``ollamux_selection_policy``, resolved at start and on reload); the backends
themselves live in ``gateway.backends`` and the shared order in ``ollamux.fleet``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet

from ...backend import Backend
from ...config import Config
from ...dialect import Dialect
from ...endpoints import ENDPOINTS, Kind
from ...errors import GatewayError
from ...exchange import Exchange, Outcome
from ...fleet import Choice, FleetState, SelectionPolicy, Verdict, fleet_of
from ...gateway import Gateway
from . import management
from .waitqueue import Waiter, WaitQueue

# Requests that do not run a model on the backend: they skip concurrency caps and never wait.
_LIGHT_PATHS = frozenset(p for p, e in ENDPOINTS.items() if e.kind is Kind.METADATA)
_EWMA = 0.2

# The policy's bound ``choose``, looked up once rather than on every call.
_Choose = Callable[[Sequence[Backend], str | None, AbstractSet[str], bool, float], Choice]


def slots_of(gateway: Gateway) -> Slots:
    """The gateway's balancer state, created on first use."""
    return gateway.state_of(Slots)


class Slots:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.fleet: FleetState = fleet_of(gateway)
        routing = gateway.config.routing
        self.queue_timeout_s = routing.queue_timeout_s
        self.queue = WaitQueue(routing.max_queue)
        self.policy: SelectionPolicy | None = None
        self._policy_choose: _Choose | None = None
        self.waits = 0
        self.wait_s_total = 0.0
        self.wait_s_avg = 0.0
        self.timeouts = 0
        self.rejected = 0
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

    # -- lifecycle ----------------------------------------------------------------------

    async def resolve_policy(self) -> None:
        """Ask ``ollamux_selection_policy`` for the policy (at start and after a reload)."""
        policy = await self.gateway.hooks.selection_policy(self.gateway)
        if policy is None:
            raise RuntimeError("no selection policy: every ollamux_selection_policy returned None")
        self.policy = policy
        self._policy_choose = policy.choose

    def stop(self) -> None:
        for waiter in self.queue:
            self.queue.remove(waiter)
            if not waiter.future.done():
                waiter.future.set_exception(_unavailable("the gateway is shutting down", 1))

    def reconfigure(self, new: Config) -> None:
        """Take the new routing knobs; let waiters look again."""
        routing = new.routing
        self.queue_timeout_s = routing.queue_timeout_s
        self.queue.limit = routing.max_queue
        self.fleet.backends_changed()
        self.dispatch(settle=True)

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
        if not self.fleet.discovery_ready:
            return await self._wait(exchange)
        raise self._refusal(exchange, verdict)

    def _choose(self, exchange: Exchange, capped: bool = True) -> Choice:
        choose = self._policy_choose
        if choose is None:
            raise RuntimeError("the balancer has no selection policy (not started?)")
        backends = self.fleet.ordered()
        if exchange.model is None and exchange.dialect is Dialect.OLLAMA:
            # No model to route by (HEAD /api/version, HEAD /): an Ollama backend answers
            # Ollama's API itself, where an OpenAI-compatible server would say 501.
            backends = [b for b in backends if b.api is Dialect.OLLAMA] or backends
        return choose(
            backends,
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
        exchange.queue_position = lambda: self.queue.position(waiter)
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
            exchange.queue_position = None
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
            elif verdict is not Verdict.FULL and self.fleet.discovery_ready:
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

    def release(self, backend: Backend, outcome: Outcome) -> None:
        """Free the slot and hand it on. Runs after the other plugins learnt from the
        outcome (``trylast``), so a backend just marked unhealthy or busy is seen so."""
        backend.in_flight = max(0, backend.in_flight - 1)
        if outcome is Outcome.BUSY:
            wait_s = backend.busy_until - time.monotonic()
            if wait_s > 0:
                asyncio.get_running_loop().call_later(wait_s, self.dispatch)
        self.dispatch()


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
