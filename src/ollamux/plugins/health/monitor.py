"""The background loop that keeps the fleet's picture true: health probes of the configured
backends (with backoff for those that keep failing) and the discovery scan of a port range.

Everything due in one round is probed concurrently, each probe bounded by its timeout, so
one hung server or port never delays the others by more than that timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from ...backend import Backend
from ...config import Config
from ...config_loader import parse_port_range
from ...dialect import Dialect
from ...fleet import fleet_of
from .probe import ProbeResult, apply_probe, probe
from .settings import DiscoveryConfig, discovery

if TYPE_CHECKING:
    from ...gateway import Gateway

log = logging.getLogger("ollamux.health")


class Monitor:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.fleet = fleet_of(gateway)
        self._due: dict[str, float] = {}  # backend name -> when to probe it next
        self._next_scan = 0.0
        self._poke = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.configure(self.gateway.config)

    def configure(self, config: Config) -> None:
        """Take intervals, timeouts and the discovery range from ``config`` (also on reload:
        new static backends are probed at once, the range is scanned at once)."""
        routing = config.routing
        self.interval_s = routing.health_interval_s
        self.timeout_s = routing.probe_timeout_s
        self.backoff_max_s = routing.probe_backoff_max_s
        self.discovery: DiscoveryConfig | None = discovery(config)
        self.ports = (
            parse_port_range(self.discovery.ports, "discovery.ports")
            if self.discovery is not None and self.discovery.ports
            else range(0)
        )
        self._due = {k: v for k, v in self._due.items() if k in self.gateway.backends}
        self._next_scan = 0.0
        self._poke.set()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ollamux-health-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def backoff_s(self, failures: int) -> float:
        """Delay before re-probing a backend after ``failures`` failures in a row:
        1 s (or the health interval, if shorter), doubling, at most ``probe_backoff_max_s``."""
        base = min(1.0, self.interval_s)
        return float(min(self.backoff_max_s, base * 2 ** min(max(failures - 1, 0), 30)))

    def failed(self, backend: Backend) -> None:
        """A forwarded request failed on ``backend``: re-probe it after the backoff."""
        if backend.discovered:
            return  # the next scan re-probes it
        self._due[backend.name] = time.monotonic() + self.backoff_s(backend.failures)
        self._poke.set()

    # -- the loop -----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._round()
            except Exception:
                log.exception("health monitor round failed")
            await self._sleep()

    async def _round(self) -> None:
        now = time.monotonic()
        due = [
            b
            for b in list(self.gateway.backends.values())
            if not b.discovered and self._due.get(b.name, 0.0) <= now
        ]
        jobs = [self.check(b) for b in due]
        scanning = self.discovery is not None and self._next_scan <= now
        if scanning:
            jobs.append(self._scan())
        await asyncio.gather(*jobs)
        if scanning and self.discovery is not None:
            self._next_scan = time.monotonic() + self.discovery.interval_s
            if not self.fleet.discovery_ready:
                self.fleet.discovery_ready = True
                await self.gateway.hooks.fleet_changed(self.gateway)

    async def _sleep(self) -> None:
        now = time.monotonic()
        wake = min(self._due.values(), default=now + self.interval_s)
        if self.discovery is not None:
            wake = min(wake, self._next_scan)
        delay = max(0.0, wake - now)
        self._poke.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._poke.wait()

    async def check(self, backend: Backend) -> None:
        """Probe ``backend`` now (also out of turn: its models changed)."""
        result = await probe(
            self.gateway.session, backend.url, backend.api, backend.auth_headers(), self.timeout_s
        )
        if self.gateway.backends.get(backend.name) is not backend:
            return  # removed meanwhile
        was_healthy = backend.healthy
        revived = apply_probe(backend, result)
        if result.ok:
            self._due[backend.name] = time.monotonic() + self.interval_s
        else:
            self._due[backend.name] = time.monotonic() + self.backoff_s(backend.failures)
            log.info("backend %s is unhealthy: %s", backend.name, result.error)
        if revived:
            log.info("backend %s is healthy", backend.name)
        if result.ok != was_healthy:
            await self.gateway.hooks.backend_changed(self.gateway, backend)

    # -- discovery ----------------------------------------------------------------------

    async def _scan(self) -> None:
        """Probe every port of the range at once; add what answers, drop what stopped.
        Each port's answer is applied as soon as it arrives, not after the slowest."""
        assert self.discovery is not None
        static_urls = {b.url for b in self.gateway.backends.values() if not b.discovered}
        urls = self.range_urls()
        await asyncio.gather(*(self._scan_one(u) for u in urls if u not in static_urls))

    def range_urls(self) -> list[str]:
        """The URLs discovery scans (none without discovery)."""
        if self.discovery is None:
            return []
        return [f"http://{self.discovery.host}:{port}" for port in self.ports]

    async def _scan_one(self, url: str) -> None:
        assert self.discovery is not None
        api = Dialect(self.discovery.api)
        result = await probe(self.gateway.session, url, api, {}, self.discovery.probe_timeout_s)
        changed = self._learn(url, api, result)
        if isinstance(changed, Backend):
            await self.gateway.hooks.backend_changed(self.gateway, changed)
        elif changed:
            await self.gateway.hooks.fleet_changed(self.gateway)

    def _learn(self, url: str, api: Dialect, result: ProbeResult) -> Backend | bool:
        """Apply one scanned port's probe: True when the fleet gained or lost a backend, the
        backend when it stayed but its health changed, else False."""
        assert self.discovery is not None
        name = url.removeprefix("http://")
        known = self.gateway.backends.get(name)
        if known is not None and not known.discovered:
            return False
        if known is None:
            if not result.ok:
                return False
            backend = Backend(
                name=name,
                url=url,
                api=api,
                max_concurrency=self.discovery.max_concurrency
                or (1 if api is Dialect.OLLAMA else 16),
                discovered=True,
            )
            apply_probe(backend, result)
            self.gateway.backends[name] = backend
            self.fleet.backends_changed()
            log.info("discovered backend %s (%d models)", name, len(backend.models))
            return True
        was_healthy = known.healthy
        apply_probe(known, result)
        if not result.ok and known.in_flight == 0:
            del self.gateway.backends[name]
            self.fleet.backends_changed()
            log.info("discovered backend %s is gone: %s", name, result.error)
            return True
        return known if known.healthy != was_healthy else False
