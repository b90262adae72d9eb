"""The fleet's owners announce changes with events a plugin can watch:
``ollamux_backend_changed`` (health, drain) and ``ollamux_fleet_changed`` (backends found
or dropped, discovery's first scan done)."""

from __future__ import annotations

from typing import Any

from ollamux import hookimpl
from ollamux.backend import Backend
from ollamux.fleet import fleet_of
from ollamux.gateway import Gateway
from ollamux.testing import gateway_of
from tests.fakes.fleet import free_port_range, start_fakes, until
from tests.fakes.ollama_backend import FakeOllama


class Watcher:
    """Records every fleet event: (backend name, healthy, draining) or the backend names."""

    def __init__(self) -> None:
        self.changed: list[tuple[str, bool, bool]] = []
        self.fleets: list[list[str]] = []

    @hookimpl
    def ollamux_backend_changed(self, gateway: Gateway, backend: Backend) -> None:
        self.changed.append((backend.name, backend.healthy, backend.draining))

    @hookimpl
    def ollamux_fleet_changed(self, gateway: Gateway) -> None:
        self.fleets.append(sorted(gateway.backends))


async def test_drain_and_undrain_are_announced(gateway_client: Any, aiohttp_server: Any) -> None:
    fakes = await start_fakes(aiohttp_server, ["a"])
    watcher = Watcher()
    client = await gateway_client(
        {"backends": [{"name": "a", "url": fakes["a"][2]}], "routing": {"health_interval_s": 60}},
        plugins=[("watcher", watcher)],
    )
    await client.post("/ollamux/backends/a/drain")
    await client.post("/ollamux/backends/a/drain")  # no change, no event
    await client.post("/ollamux/backends/a/undrain")
    assert watcher.changed == [("a", True, True), ("a", True, False)]


async def test_a_backend_found_dead_by_its_probe_is_announced(gateway_client: Any) -> None:
    watcher = Watcher()
    await gateway_client(
        {"backends": [{"name": "dead", "url": "http://127.0.0.1:9"}]},
        plugins=[("watcher", watcher)],
    )
    await until(lambda: watcher.changed, what="an event for the dead backend")
    assert watcher.changed[0] == ("dead", False, False)


async def test_a_discovered_backend_and_the_first_scan_are_announced(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    base = free_port_range(1)
    await aiohttp_server(FakeOllama().app(), port=base)
    watcher = Watcher()
    client = await gateway_client(
        {
            "discovery": {"ports": str(base), "interval_s": 60},
            "routing": {"health_interval_s": 60},
        },
        plugins=[("watcher", watcher)],
    )
    gw = gateway_of(client)
    await until(lambda: fleet_of(gw).discovery_ready, what="first scan done")
    await until(lambda: len(watcher.fleets) == 2, what="found, then scan done")
    assert watcher.fleets == [[f"127.0.0.1:{base}"], [f"127.0.0.1:{base}"]]
