"""Reloading the config in a running gateway: backends synced in place, plugins told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
