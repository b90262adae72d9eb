"""The core's middlewares behave alike however the app is assembled: without plugin
middlewares the path guard, identity and the body read run as one middleware; with one,
the guard runs before it and identity after it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler

from ollamux import hookimpl
from ollamux.exchange import PRINCIPAL_KEY
from ollamux.gateway import Gateway
from tests.auth_support import ALICE, CrashingRoute, PluginRoutes, bearer, keyed, raw_request
from tests.fakes.finished import Finished

MODEL = "llama3.2:latest"


class PluginMiddleware:
    """A plugin adding a middleware; it records the path and whether the caller was known
    yet, for each request it sees."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []

    @hookimpl
    def ollamux_register_routes(self, gateway: Gateway, app: web.Application) -> None:
        app.middlewares.append(self.middleware)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.seen.append((request.path, PRINCIPAL_KEY in request))
        return await handler(request)


# ``cors`` adds a middleware of its own: off in both, so that only the test's plugin counts.
ASSEMBLIES = ["one middleware", "with a plugin middleware"]


async def _client(
    gateway_client: Any, assembly: str, url: str, *plugins: tuple[str, object], **extra: Any
) -> Any:
    config = keyed(url) | {"plugins": {"disable": ["cors"]}} | extra
    if assembly == "with a plugin middleware":
        plugins = (*plugins, ("mw", PluginMiddleware()))
    return await gateway_client(config, plugins=list(plugins))


@pytest.mark.parametrize("assembly", ASSEMBLIES)
@pytest.mark.parametrize(
    ("target", "canonical"),
    [
        ("//v1/models", "/v1/models"),
        ("/api/./tags", "/api/tags"),
        ("/v1/../ollamux/backends", "/ollamux/backends"),
        ("/ollamux%2Fbackends", "/ollamux/backends"),
        ("/api/tags/..", "/api/"),
    ],
)
async def test_a_non_canonical_path_is_redirected_before_anything_else_sees_it(
    gateway_client: Any, fake_ollama: Any, assembly: str, target: str, canonical: str
) -> None:
    fake, url = fake_ollama
    client = await _client(gateway_client, assembly, url)
    status, headers, _ = await raw_request(client, "GET", target, bearer(ALICE))
    assert status == 308
    assert headers["location"] == canonical
    assert fake.received == []


@pytest.mark.parametrize("assembly", ASSEMBLIES)
@pytest.mark.parametrize("target", ["/api/.hidden", "/api/tags.json", "/api/x..y"])
async def test_a_canonical_path_with_dots_in_a_segment_is_not_redirected(
    gateway_client: Any, fake_ollama: Any, assembly: str, target: str
) -> None:
    _fake, url = fake_ollama
    client = await _client(gateway_client, assembly, url)
    status, _, _ = await raw_request(client, "GET", target, bearer(ALICE))
    assert status not in (308, 400)


@pytest.mark.parametrize("assembly", ASSEMBLIES)
@pytest.mark.parametrize(("target", "status"), [("/api/t%00ags", 400), ("/api/%ff", 400)])
async def test_a_path_with_control_characters_or_a_bad_encoding_is_a_400(
    gateway_client: Any, fake_ollama: Any, assembly: str, target: str, status: int
) -> None:
    fake, url = fake_ollama
    client = await _client(gateway_client, assembly, url)
    got, _, _ = await raw_request(client, "GET", target, bearer(ALICE))
    assert got == status
    assert fake.received == []


@pytest.mark.parametrize("assembly", ASSEMBLIES)
async def test_a_crashing_plugin_route_is_a_500_without_its_traceback(
    gateway_client: Any, fake_ollama: Any, assembly: str
) -> None:
    _fake, url = fake_ollama
    client = await _client(gateway_client, assembly, url, ("crash", CrashingRoute()))
    resp = await client.get("/boom", headers=bearer(ALICE))
    assert resp.status == 500
    assert await resp.json() == {"error": "internal error"}


@pytest.mark.parametrize("assembly", ASSEMBLIES)
async def test_an_unknown_method_is_a_json_405(
    gateway_client: Any, fake_ollama: Any, assembly: str
) -> None:
    _fake, url = fake_ollama
    client = await _client(gateway_client, assembly, url, ("r", PluginRoutes()))
    resp = await client.delete("/tasks/status", headers=bearer(ALICE))
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]


@pytest.mark.parametrize("assembly", ASSEMBLIES)
async def test_a_body_declared_too_large_is_a_413_before_it_is_read(
    gateway_client: Any, fake_ollama: Any, assembly: str
) -> None:
    fake, url = fake_ollama
    client = await _client(gateway_client, assembly, url, server={"max_body_mb": 0.001})
    body = json.dumps({"model": MODEL, "prompt": "x" * 4000}).encode()
    status, _, _ = await raw_request(client, "POST", "/api/generate", bearer(ALICE), body)
    assert status == 413
    assert fake.received == []


@pytest.mark.parametrize("assembly", ASSEMBLIES)
async def test_a_proxied_request_is_served_as_the_caller_the_middleware_identified(
    gateway_client: Any, fake_ollama: Any, assembly: str
) -> None:
    _fake, url = fake_ollama
    finished = Finished()
    client = await _client(gateway_client, assembly, url, ("finished", finished))
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    resp = await client.post("/api/chat", json=body, headers=bearer(ALICE))
    assert resp.status == 200
    exchange = await finished.last()
    assert exchange.principal.name == "alice"
    assert exchange.json == body


@pytest.mark.parametrize("assembly", ASSEMBLIES)
async def test_an_unidentified_proxied_request_is_a_401_and_a_request_event(
    gateway_client: Any, fake_ollama: Any, assembly: str
) -> None:
    fake, url = fake_ollama
    finished = Finished()
    client = await _client(gateway_client, assembly, url, ("finished", finished))
    resp = await client.post("/api/chat", json={"model": MODEL, "messages": []})
    assert resp.status == 401
    assert (await finished.last()).status == 401
    assert fake.received == []


async def test_a_plugin_middleware_sees_canonical_paths_before_the_caller_is_identified(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    plugin = PluginMiddleware()
    client = await gateway_client(
        keyed(url) | {"plugins": {"disable": ["cors"]}}, plugins=[("mw", plugin)]
    )
    await raw_request(client, "GET", "//api/tags", bearer(ALICE))
    resp = await client.get("/api/tags", headers=bearer(ALICE))
    assert resp.status == 200
    assert plugin.seen == [("/api/tags", False)]
