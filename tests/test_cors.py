"""CORS: off by default; preflights answered without a key; headers on every response."""

from __future__ import annotations

import json
from typing import Any

from tests.auth_support import ALICE, bearer, keyed

ORIGIN = "https://app.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def with_cors(url: str, **cors: Any) -> dict[str, Any]:
    config = keyed(url)
    config["cors"] = {"allow_origins": [ORIGIN], **cors}
    return config


async def test_cors_is_off_by_default(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.get("/api/tags", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_preflight_without_cors_still_needs_a_key(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.options("/api/chat", headers=PREFLIGHT)
    assert resp.status == 401


async def test_preflight_is_answered_without_a_key(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client(with_cors(url, max_age_s=120))
    resp = await client.options("/v1/chat/completions", headers=PREFLIGHT)
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert resp.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert resp.headers["Access-Control-Max-Age"] == "120"
    assert fake.received == []


async def test_preflight_from_another_origin_is_refused(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(with_cors(url))
    headers = PREFLIGHT | {"Origin": "https://evil.example"}
    resp = await client.options("/api/chat", headers=headers)
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_plain_options_is_not_a_preflight_and_needs_a_key(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(with_cors(url))
    resp = await client.options("/ollamux/backends", headers={"Origin": ORIGIN})
    assert resp.status == 401


async def test_wildcard_origin_is_answered_with_star(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(with_cors(url, allow_origins=["*"]))
    resp = await client.get("/api/tags", headers={"Origin": ORIGIN, **bearer(ALICE)})
    assert resp.headers["Access-Control-Allow-Origin"] == "*"


async def test_json_response_carries_cors_headers(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(with_cors(url))
    resp = await client.get("/api/tags", headers={"Origin": ORIGIN, **bearer(ALICE)})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in resp.headers["Vary"]
    assert "X-Task-Id" in resp.headers["Access-Control-Expose-Headers"]


async def test_stream_carries_cors_headers(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(with_cors(url))
    body = {"model": "llama3.2:latest", "messages": []}
    resp = await client.post("/api/chat", json=body, headers={"Origin": ORIGIN, **bearer(ALICE)})
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert lines[-1]["done"] is True


async def test_auth_refusal_carries_cors_headers_so_pages_can_read_it(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(with_cors(url))
    resp = await client.get("/api/tags", headers={"Origin": ORIGIN})
    assert resp.status == 401
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN


async def test_other_origin_gets_no_cors_headers(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(with_cors(url))
    headers = {"Origin": "https://evil.example", **bearer(ALICE)}
    resp = await client.get("/api/tags", headers=headers)
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_listed_allow_headers_are_answered_as_configured(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(with_cors(url, allow_headers=["Authorization", "Content-Type"]))
    resp = await client.options("/api/chat", headers=PREFLIGHT)
    assert resp.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
