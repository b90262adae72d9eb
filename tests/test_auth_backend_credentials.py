"""Backends get their own configured credentials, never the client's."""

from __future__ import annotations

from typing import Any

from tests.auth_support import ALICE, BACKEND_KEY, BOB, bearer, keyed


async def test_backend_api_key_is_sent_instead_of_the_clients(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    config = keyed(url, api="openai")
    config["backends"][0] |= {"api_key": BACKEND_KEY, "headers": {"X-Org": "acme"}}
    client = await gateway_client(config)
    body = {"model": "qwen2.5-7b", "messages": []}
    resp = await client.post("/v1/chat/completions", json=body, headers=bearer(BOB))
    assert resp.status == 200
    assert fake.last.headers["Authorization"] == f"Bearer {BACKEND_KEY}"
    assert fake.last.headers["X-Org"] == "acme"


async def test_client_x_api_key_is_not_forwarded(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = {"model": "llama3.2:latest", "prompt": "x", "stream": False}
    resp = await client.post("/api/generate", json=body, headers={"X-API-Key": ALICE})
    assert resp.status == 200
    assert "X-API-Key" not in fake.last.headers
    assert "Authorization" not in fake.last.headers
    assert ALICE not in str(fake.last.headers)
