"""Port-range discovery: backends that start later are found, those that stop are dropped,
a hung port does not hold up the others, and an unknown model waits for the first scan."""

from __future__ import annotations

import asyncio
from typing import Any

from ollamux.fleet import fleet_of
from ollamux.testing import gateway_of
from tests.fakes.fleet import HungServer, calls, free_port_range, until
from tests.fakes.ollama_backend import FakeOllama

CHAT = {
    "model": "llama3.2:latest",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": False,
}


def discovery(base: int, n: int, **opts: Any) -> dict[str, Any]:
    return {
        "discovery": {"ports": f"{base}-{base + n - 1}", "interval_s": 0.05, **opts},
        "routing": {"health_interval_s": 60},
    }


async def test_backend_started_later_is_discovered_and_used(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    base = free_port_range(3)
    client = await gateway_client(discovery(base, 3))
    gw = gateway_of(client)
    await until(lambda: fleet_of(gw).discovery_ready, what="first scan done")
    assert gw.backends == {}
    fake = FakeOllama()
    await aiohttp_server(fake.app(), port=base + 1)
    name = f"127.0.0.1:{base + 1}"
    await until(lambda: name in gw.backends, what="the new backend is found")
    backend = gw.backends[name]
    assert backend.discovered and backend.healthy
    assert backend.models == {"llama3.2:latest"}
    assert backend.max_concurrency == 1
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 200
    assert len(calls(fake, "/api/chat")) == 1


async def test_backend_that_stops_is_dropped(gateway_client: Any, aiohttp_server: Any) -> None:
    base = free_port_range(2)
    server = await aiohttp_server(FakeOllama().app(), port=base)
    client = await gateway_client(discovery(base, 2))
    gw = gateway_of(client)
    name = f"127.0.0.1:{base}"
    await until(lambda: name in gw.backends)
    await server.close()
    await until(lambda: name not in gw.backends, what="the stopped backend is dropped")
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 503


async def test_a_hung_port_does_not_hold_up_the_scan(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    base = free_port_range(2)
    hung = HungServer(base)
    await hung.start()
    try:
        fake = FakeOllama()
        await aiohttp_server(fake.app(), port=base + 1)
        client = await gateway_client(discovery(base, 2, probe_timeout_s=60))
        gw = gateway_of(client)
        await until(lambda: hung.accepted >= 1, what="the hung port is probed")
        await until(lambda: f"127.0.0.1:{base + 1}" in gw.backends, what="found meanwhile")
        # Found while the probe of the hung port is still waiting for its answer.
        assert hung.open_connections >= 1
        assert f"127.0.0.1:{base}" not in gw.backends
        resp = await client.post("/api/chat", json=CHAT)
        assert resp.status == 200
    finally:
        await hung.stop()


async def test_unknown_model_waits_while_discovery_is_starting(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    base = free_port_range(1)
    fake = FakeOllama(models=["late:1b"])
    fake.tags_gate = asyncio.Event()
    await aiohttp_server(fake.app(), port=base)
    client = await gateway_client(discovery(base, 1))
    gw = gateway_of(client)
    await until(lambda: len(calls(fake, "/api/tags")) >= 1, what="first scan under way")
    pending = asyncio.create_task(client.post("/api/chat", json={**CHAT, "model": "late:1b"}))
    await until(lambda: gw.gauges["queue_depth"]() == 1, what="request waits, not 404")
    fake.tags_gate.set()
    resp = await pending
    assert resp.status == 200
    assert [r.body["model"] for r in calls(fake, "/api/chat")] == ["late:1b"]


async def test_unknown_model_is_404_once_discovery_has_run(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    base = free_port_range(1)
    await aiohttp_server(FakeOllama().app(), port=base)
    client = await gateway_client(discovery(base, 1))
    gw = gateway_of(client)
    await until(lambda: f"127.0.0.1:{base}" in gw.backends)
    resp = await client.post("/api/chat", json={**CHAT, "model": "nope:1b"})
    assert resp.status == 404


async def test_static_backend_on_a_scanned_port_is_not_duplicated(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    base = free_port_range(2)
    await aiohttp_server(FakeOllama().app(), port=base)
    await aiohttp_server(FakeOllama().app(), port=base + 1)
    cfg = discovery(base, 2)
    cfg["backends"] = [{"name": "gpu1", "url": f"http://127.0.0.1:{base}"}]
    client = await gateway_client(cfg)
    gw = gateway_of(client)
    await until(lambda: f"127.0.0.1:{base + 1}" in gw.backends)
    assert sorted(gw.backends) == [f"127.0.0.1:{base + 1}", "gpu1"]
