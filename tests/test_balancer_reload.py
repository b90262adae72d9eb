"""A config reload (SIGHUP) reaches the balancer: new backends are routed to at once, the
queue takes its new limits, discovery forgets what it no longer covers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml

from ollamux.backend import Backend
from ollamux.reload import reload_config
from ollamux.testing import gateway_of
from tests.fakes.fleet import calls, start_fakes, until

CHAT = {
    "model": "llama3.2:latest",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": False,
}


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


async def test_a_backend_swapped_in_by_reload_takes_the_traffic(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    routing = {"health_interval_s": 60}
    client = await gateway_client(
        {"backends": [{"name": "a", "url": fakes["a"][2]}], "routing": routing}
    )
    gw = gateway_of(client)
    assert (await client.post("/api/chat", json=CHAT)).status == 200
    path = write(
        tmp_path / "new.yaml",
        {"backends": [{"name": "b", "url": fakes["b"][2]}], "routing": routing},
    )
    assert await reload_config(gw, path)
    await until(lambda: gw.backends["b"].last_probe is not None, what="b probed at once")
    assert (await client.post("/api/chat", json=CHAT)).status == 200
    assert len(calls(fakes["a"][0], "/api/chat")) == 1
    assert len(calls(fakes["b"][0], "/api/chat")) == 1


async def test_reload_applies_the_new_queue_limit(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    fake, _, url = (await start_fakes(aiohttp_server, ["a"]))["a"]
    fake.mode = "wait"
    cfg = {"backends": [{"name": "a", "url": url}], "routing": {"health_interval_s": 60}}
    client = await gateway_client(cfg)
    gw = gateway_of(client)
    held = asyncio.create_task(client.post("/api/chat", json={**CHAT, "stream": True}))
    await until(lambda: len(calls(fake, "/api/chat")) == 1)
    path = write(
        tmp_path / "new.yaml", {**cfg, "routing": {"health_interval_s": 60, "max_queue": 0}}
    )
    assert await reload_config(gw, path)
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 503
    assert "too many requests are waiting" in (await resp.json())["error"]
    fake.release.set()
    assert (await held).status == 200


async def test_reload_without_discovery_forgets_discovered_backends(
    gateway_client: Any, tmp_path: Path
) -> None:
    cfg = {"discovery": {"ports": "1-2", "interval_s": 60, "probe_timeout_s": 0.2}}
    client = await gateway_client(cfg)
    gw = gateway_of(client)
    gw.backends["127.0.0.1:1"] = Backend(
        name="127.0.0.1:1", url="http://127.0.0.1:1", discovered=True
    )
    path = write(tmp_path / "new.yaml", {"backends": [{"name": "s", "url": "http://127.0.0.1:9"}]})
    assert await reload_config(gw, path)
    assert sorted(gw.backends) == ["s"]
