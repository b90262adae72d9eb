"""Paths are canonical before routing and auth: no spelling of an admin path gets past."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.auth_support import ADMIN, ALICE, PluginRoutes, bearer, keyed, raw_request

BYPASSES = [
    "//ollamux/backends",
    "/v1/../ollamux/backends",
    "/api/../ollamux/backends",
    "/%6Fllamux/backends",
    "/%6f%6c%6c%61%6d%75%78/backends",
    "/ollamux%2Fbackends",
    "/v1/%2e%2e/ollamux/backends",
    "/v1/..%2Follamux/backends",
    "/v1/%2E%2E/ollamux/backends",
    "/./ollamux/backends",
    "/ollamux/./backends",
    "/tasks/../ollamux/backends",
    "http://evil.example/ollamux/backends",
]


@pytest.mark.parametrize("target", BYPASSES)
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "POST"])
async def test_no_spelling_of_an_admin_path_is_served_to_an_ordinary_key(
    gateway_client: Any, fake_ollama: Any, target: str, method: str
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    for headers in ({}, bearer(ALICE)):
        status, got, body = await raw_request(client, method, target, headers)
        assert status in (308, 401, 403, 405), (target, method, status, body)
        if status == 308:
            assert got["location"] == "/ollamux/backends"
            status, _, _ = await raw_request(client, method, got["location"], headers)
            assert status in (401, 403, 405)
    assert fake.received == []


@pytest.mark.parametrize(
    ("target", "canonical"),
    [
        ("//v1/models", "/v1/models"),
        ("/v1//models", "/v1/models"),
        ("/api/./tags", "/api/tags"),
        ("/v1/models/../models?x=1", "/v1/models?x=1"),
    ],
)
async def test_non_canonical_path_is_redirected_to_the_canonical_one(
    gateway_client: Any, fake_ollama: Any, target: str, canonical: str
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    status, headers, _ = await raw_request(client, "GET", target)
    assert status == 308
    assert headers["location"] == canonical
    assert fake.received == []


async def test_redirected_request_is_served_at_the_canonical_path(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    status, headers, _ = await raw_request(client, "GET", "//api/tags", bearer(ALICE))
    assert status == 308
    status, _, body = await raw_request(client, "GET", headers["location"], bearer(ALICE))
    assert status == 200
    assert "models" in json.loads(body)


async def test_admin_reaches_the_canonical_admin_path(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    status, _, body = await raw_request(client, "GET", "/ollamux/backends", bearer(ADMIN))
    assert status == 200
    assert json.loads(body) == {"caller": "admin"}


@pytest.mark.parametrize("target", ["/api/tags%00", "/api/ta%0Ags", "/tasks/status/a%1Fb"])
async def test_control_characters_in_the_path_are_a_400(
    gateway_client: Any, fake_ollama: Any, target: str
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    status, _, body = await raw_request(client, "GET", target, bearer(ALICE))
    assert status == 400
    assert json.loads(body) == {"error": "invalid characters in the request path"}
    assert fake.received == []


async def test_invalid_percent_encoding_is_a_400(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    status, _, _ = await raw_request(client, "GET", "/api/%ff%fe", bearer(ALICE))
    assert status == 400


async def test_head_on_a_proxied_path_needs_a_key(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    status, _, _ = await raw_request(client, "HEAD", "/api/tags")
    assert status == 401
    assert [r for r in fake.received if r.method == "HEAD"] == []


async def test_bad_path_on_v1_is_refused_in_openai_dialect(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    status, _, body = await raw_request(client, "GET", "/v1/models%00", bearer(ALICE))
    assert status == 400
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
