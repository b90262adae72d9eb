"""Reloading the config in a running gateway: backends synced in place, plugins told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ollamux import hookimpl
from ollamux.reload import reload_config
from ollamux.testing import gateway_of


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any]] = []

    @hookimpl
    def ollamux_config_reloaded(self, gateway: Any, old: Any, new: Any) -> None:
        self.calls.append((old, new))


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


async def test_plugins_hear_the_new_config_and_gateway_holds_it(
    gateway_client: Any, tmp_path: Path
) -> None:
    rec = Recorder()
    client = await gateway_client(
        {"backends": [{"name": "a", "url": "http://127.0.0.1:9"}]}, plugins=[("rec", rec)]
    )
    gw = gateway_of(client)
    old = gw.config
    path = write(
        tmp_path / "new.yaml",
        {
            "backends": [{"name": "a", "url": "http://127.0.0.1:9"}],
            "models": {"aliases": {"gpt-4o": "llama3.2:latest"}},
        },
    )
    assert await reload_config(gw, path) is True
    assert gw.config.models.aliases == {"gpt-4o": "llama3.2:latest"}
    assert rec.calls == [(old, gw.config)]


async def test_a_kept_backend_is_updated_in_place_with_its_live_state(
    gateway_client: Any, tmp_path: Path
) -> None:
    client = await gateway_client({"backends": [{"name": "a", "url": "http://127.0.0.1:9"}]})
    gw = gateway_of(client)
    backend = gw.backends["a"]
    backend.in_flight = 1
    path = write(
        tmp_path / "new.yaml",
        {"backends": [{"name": "a", "url": "http://127.0.0.1:10/", "max_concurrency": 4}]},
    )
    assert await reload_config(gw, path)
    assert gw.backends["a"] is backend
    assert (backend.url, backend.max_concurrency, backend.in_flight) == (
        "http://127.0.0.1:10",
        4,
        1,
    )


async def test_discovered_backends_survive_a_reload(gateway_client: Any, tmp_path: Path) -> None:
    from ollamux.backend import Backend

    client = await gateway_client({"backends": [{"name": "a", "url": "http://127.0.0.1:9"}]})
    gw = gateway_of(client)
    gw.backends["found"] = Backend(name="found", url="http://127.0.0.1:24000", discovered=True)
    path = write(tmp_path / "new.yaml", {"backends": [{"name": "b", "url": "http://127.0.0.1:9"}]})
    assert await reload_config(gw, path)
    assert sorted(gw.backends) == ["b", "found"]


async def test_a_broken_file_is_refused_and_nothing_changes(
    gateway_client: Any, tmp_path: Path
) -> None:
    rec = Recorder()
    client = await gateway_client(
        {"backends": [{"name": "a", "url": "http://127.0.0.1:9"}]}, plugins=[("rec", rec)]
    )
    gw = gateway_of(client)
    old = gw.config
    path = tmp_path / "bad.yaml"
    path.write_text("backends: [{name: a, url: 'not a url'}]\n")
    assert await reload_config(gw, path) is False
    assert gw.config is old
    assert sorted(gw.backends) == ["a"]
    assert rec.calls == []


async def test_more_slots_after_a_reload_start_a_waiting_request(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    import asyncio

    fake, url = fake_ollama
    fake.mode = "wait"
    backend = {"name": "a", "url": url, "max_concurrency": 1}
    client = await gateway_client({"backends": [backend], "routing": {"queue_timeout_s": 30}})
    body = {"model": "llama3.2:latest", "messages": []}
    first = await client.post("/api/chat", json=body)
    await first.content.readline()
    second = asyncio.ensure_future(client.post("/api/chat", json=body))
    gw = gateway_of(client)
    deadline = asyncio.get_running_loop().time() + 10
    while gw.gauges["queue_depth"]() < 1:  # the second request waits for a slot
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    path = write(tmp_path / "new.yaml", {"backends": [{**backend, "max_concurrency": 2}]})
    assert await reload_config(gw, path)
    while len([r for r in fake.received if r.path == "/api/chat"]) < 2:
        assert asyncio.get_running_loop().time() < deadline, "the waiting request never ran"
        await asyncio.sleep(0.02)
    fake.release.set()
    assert (await second).status == 200
    await (await second).read()
    await first.read()


async def test_an_alias_added_by_a_reload_is_used_by_the_next_request(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    backends = [{"name": "a", "url": url}]
    client = await gateway_client({"backends": backends})
    body = {"model": "gpt-4o", "prompt": "hi", "stream": False}
    assert (await client.post("/api/generate", json=body)).status == 404
    path = write(
        tmp_path / "new.yaml",
        {"backends": backends, "models": {"aliases": {"gpt-4o": "llama3.2:latest"}}},
    )
    assert await reload_config(gateway_of(client), path)
    resp = await client.post("/api/generate", json=body)
    assert resp.status == 200
    assert fake.last.body["model"] == "llama3.2:latest"


async def test_the_access_log_can_be_switched_off_by_a_reload(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="ollamux.access")
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"name": "a", "url": url}]})
    await (await client.get("/api/version")).read()
    path = write(
        tmp_path / "new.yaml",
        {
            "backends": [{"name": "a", "url": url}],
            "server": {"access_log": False},
        },
    )
    assert await reload_config(gateway_of(client), path)
    await (await client.get("/api/version")).read()
    assert len([r for r in caplog.records if r.name == "ollamux.access"]) == 1


async def test_a_reloaded_read_timeout_applies_to_the_next_forwarded_request(
    gateway_client: Any, tmp_path: Path
) -> None:
    client = await gateway_client({"backends": [{"name": "a", "url": "http://127.0.0.1:9"}]})
    gw = gateway_of(client)
    path = write(
        tmp_path / "new.yaml",
        {
            "backends": [{"name": "a", "url": "http://127.0.0.1:9"}],
            "routing": {"read_timeout_s": 7, "connect_timeout_s": 3},
        },
    )
    assert await reload_config(gw, path)
    assert (gw.upstream.read_timeout, gw.upstream.connect_timeout) == (7, 3)
