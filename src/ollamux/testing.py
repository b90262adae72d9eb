"""pytest fixtures for testing ollamux and its plugins against a real gateway on loopback.

Use them from a plugin's tests with ``pytest_plugins = ["ollamux.testing"]`` (pytest-aiohttp
must be installed). ``gateway_client`` builds a gateway from a config mapping, with extra
plugin objects registered, and returns an aiohttp test client talking to it over HTTP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from .app import create_app
from .config_loader import build_config, deep_merge
from .gateway import Gateway
from .pipeline import GATEWAY
from .plugin_manager import build_plugin_manager

GatewayClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


def test_config(data: Mapping[str, Any], tmp: Path) -> dict[str, Any]:
    """A config for tests: in-memory tasks, files under ``tmp``, no autoloaded plugins."""
    base: dict[str, Any] = {
        "tasks": {"store": "memory", "sqlite_path": str(tmp / "tasks.db")},
        "jobs": {"sqlite_path": str(tmp / "jobs.db")},
        "plugins": {"autoload": False},
    }
    return deep_merge(base, data)


# Not a test, although its name says so: keep pytest from collecting it where it is imported.
test_config.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture
def gateway_client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], tmp_path: Path
) -> GatewayClientFactory:
    async def factory(
        config: Mapping[str, Any], plugins: Sequence[tuple[str, object]] = ()
    ) -> TestClient[Any, Any]:
        cfg = build_config(test_config(config, tmp_path))
        # Registered before the checks: a test plugin may stand in for a disabled built-in
        # (a misspelled hook in it fails the test, not silently).
        pm = build_plugin_manager(cfg, extra=plugins)
        for name, _plugin in plugins:
            pm.origins[name] = "test"
        # A handler still in flight when a test ends is cut after 5 s, not aiohttp's 60 s.
        server = TestServer(create_app(cfg, pm))
        await server.start_server(shutdown_timeout=5)
        client = await aiohttp_client(server)
        gateway_of(client).self_url = str(client.make_url("")).rstrip("/")
        return client

    return factory


def gateway_of(client: TestClient[Any, Any]) -> Gateway:
    """The ``Gateway`` behind a test client (its backends, hooks, config)."""
    app: web.Application | None = client.app
    assert app is not None
    return app[GATEWAY]
