"""Client keys: who gets in, how the refusal looks in each dialect, and plugin routes."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest

from tests.auth_support import ADMIN, ALICE, BOB, PluginRoutes, bearer, keyed
from tests.fakes.browser import chromium_page


async def test_no_keys_means_auth_is_off_and_said_once_at_start(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _fake, url = fake_ollama
    with caplog.at_level(logging.INFO, logger="ollamux.auth"):
        client = await gateway_client({"backends": [{"url": url}]}, plugins=[("r", PluginRoutes())])
        assert (await client.get("/api/tags")).status == 200
        assert (await client.get("/tasks/status")).status == 200
    assert [r.getMessage() for r in caplog.records].count(
        "auth is off: no API keys configured (auth.keys, auth.admin_keys)"
    ) == 1


async def test_bearer_key_is_accepted(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.post(
        "/api/generate",
        json={"model": "llama3.2:latest", "prompt": "hi", "stream": False},
        headers=bearer(ALICE),
    )
    assert resp.status == 200
    assert (await resp.json())["done"] is True


async def test_x_api_key_header_is_accepted(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.get("/api/tags", headers={"X-API-Key": BOB})
    assert resp.status == 200


async def test_key_given_as_sha256_is_accepted(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    assert (await client.get("/api/tags", headers=bearer(BOB))).status == 200


async def test_missing_key_is_401_in_ollama_dialect_with_challenge(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.post("/api/chat", json={"model": "llama3.2:latest", "messages": []})
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    assert await resp.json() == {"error": "an API key is required"}
    assert fake.received == []


async def test_wrong_key_is_401_in_openai_dialect(gateway_client: Any, fake_openai: Any) -> None:
    _fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "qwen2.5-7b", "messages": []},
        headers=bearer("not-a-key"),
    )
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"] == "Bearer"
    error = (await resp.json())["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"


async def test_empty_bearer_value_is_refused(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.get("/api/tags", headers={"Authorization": "Bearer "})
    assert resp.status == 401


async def test_basic_auth_password_is_accepted_for_the_web_page(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    token = base64.b64encode(f"me:{ALICE}".encode()).decode()
    resp = await client.get("/list", headers={"Authorization": f"Basic {token}"})
    assert await resp.json() == {"caller": "alice"}


async def test_browser_page_load_without_key_is_offered_basic_auth(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    resp = await client.get("/list", headers={"Accept": "text/html"})
    assert resp.status == 401
    # One challenge per header, and it is Basic: Chromium ignores "Bearer, Basic ...".
    assert resp.headers.getall("WWW-Authenticate") == ['Basic realm="ollamux", charset="UTF-8"']


@pytest.mark.slow
async def test_a_browser_with_a_key_as_password_opens_the_jobs_page(
    gateway_client: Any, fake_ollama: Any
) -> None:
    from playwright.async_api import expect

    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    base = str(client.make_url("")).rstrip("/")
    credentials = {"username": "me", "password": ALICE}
    async with chromium_page(1100, http_credentials=credentials) as page:
        page.set_default_timeout(15000)
        await page.goto(base + "/")
        # The page, its script and the script's own requests all got past auth.
        await expect(page.locator("#model option", has_text="llama3.2:latest")).to_have_count(1)


async def test_health_needs_no_key(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    resp = await client.get("/ollamux/health")
    assert resp.status == 200


async def test_plugin_route_without_key_is_401_json(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    resp = await client.get("/tasks/status")
    assert resp.status == 401
    assert await resp.json() == {"error": "an API key is required"}


async def test_plugin_route_sees_the_caller(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    resp = await client.get("/tasks/status/abc", headers=bearer(ALICE))
    assert await resp.json() == {"caller": "alice"}


async def test_unknown_path_needs_a_key_before_it_is_404(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    assert (await client.get("/nothing/here")).status == 401
    resp = await client.get("/nothing/here", headers=bearer(ALICE))
    assert resp.status == 404
    assert await resp.json() == {"error": "not found"}


@pytest.mark.parametrize(
    "path", ["/ollamux/backends", "/__proxy/backends", "/metrics", "/ollamux/openapi.json"]
)
async def test_admin_endpoints_refuse_ordinary_keys(
    gateway_client: Any, fake_ollama: Any, path: str
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    assert (await client.get(path)).status == 401
    resp = await client.get(path, headers=bearer(ALICE))
    assert resp.status == 403
    assert await resp.json() == {"error": "this endpoint needs an admin key"}
    assert (await client.get(path, headers=bearer(ADMIN))).status == 200


async def test_key_marked_admin_may_use_admin_endpoints(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    config = keyed(url, keys=[{"name": "ops", "key": BOB, "admin": True}])
    client = await gateway_client(config, plugins=[("r", PluginRoutes())])
    resp = await client.get("/ollamux/backends", headers=bearer(BOB))
    assert await resp.json() == {"caller": "ops"}


@pytest.mark.parametrize("path", ["/api/pull", "/api/delete", "/api/create", "/api/copy"])
async def test_model_management_needs_an_admin_key(
    gateway_client: Any, fake_ollama: Any, path: str
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = {"model": "llama3.2:latest", "stream": False}
    resp = await client.post(path, json=body, headers=bearer(BOB))
    assert resp.status == 403
    assert fake.received == []


async def test_admin_key_may_pull_models(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = {"model": "llama3.2:latest", "stream": False}
    resp = await client.post("/api/pull", json=body, headers=bearer(ADMIN))
    assert resp.status == 200
    assert fake.last.path == "/api/pull"


async def test_internal_header_with_wrong_token_is_refused(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    headers = {"X-Ollamux-Internal": "guess", "X-Ollamux-Principal": "alice"}
    assert (await client.get("/tasks/status", headers=headers)).status == 401


async def test_principal_header_alone_does_not_change_the_caller(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    headers = {"X-Ollamux-Principal": "admin", **bearer(ALICE)}
    resp = await client.get("/tasks/status", headers=headers)
    assert await resp.json() == {"caller": "alice"}
    assert (await client.get("/ollamux/backends", headers=headers)).status == 403
