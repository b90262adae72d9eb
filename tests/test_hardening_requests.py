"""Bad input bounces cleanly: oversized bodies and headers, slow bodies, crashing code."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web

from ollamux import hookimpl
from ollamux.exchange import Exchange
from tests.auth_support import ALICE, CrashingRoute, PluginRoutes, bearer, keyed, raw_request


async def test_oversized_body_is_413_in_ollama_dialect(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    config = keyed(url) | {"server": {"max_body_mb": 0.01}}
    client = await gateway_client(config)
    body = {"model": "llama3.2:latest", "prompt": "x" * 20_000}
    resp = await client.post("/api/generate", json=body, headers=bearer(ALICE))
    assert resp.status == 413
    assert "error" in await resp.json()
    assert fake.received == []


async def test_oversized_body_is_413_in_openai_dialect(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    config = keyed(url, api="openai") | {"server": {"max_body_mb": 0.01}}
    client = await gateway_client(config)
    body = {"model": "qwen2.5-7b", "messages": [{"role": "user", "content": "x" * 20_000}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=bearer(ALICE))
    assert resp.status == 413
    assert (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_oversized_body_without_key_is_refused_before_it_is_read(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    config = keyed(url) | {"server": {"max_body_mb": 0.01}}
    client = await gateway_client(config)
    resp = await client.post("/api/generate", data=b"x" * 20_000)
    assert resp.status == 401


async def test_oversized_header_is_a_client_error(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    status, _, _ = await raw_request(client, "GET", "/api/tags", {"X-Big": "a" * 20_000})
    assert 400 <= status < 500


async def test_too_many_headers_is_a_client_error(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    headers = {f"X-H{i}": "v" for i in range(300)}
    status, _, _ = await raw_request(client, "GET", "/api/tags", headers)
    assert 400 <= status < 500


async def test_body_that_never_arrives_is_a_408(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    config = keyed(url) | {"server": {"body_timeout_s": 0.2}}
    client = await gateway_client(config)
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"POST /api/generate HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n"
        + f"Authorization: Bearer {ALICE}\r\n\r\n".encode()
        + b'{"model": '
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    body = await asyncio.wait_for(reader.readexactly(length), 30)
    writer.close()
    assert head.startswith(b"HTTP/1.1 408")
    assert json.loads(body) == {"error": "request body not received in time"}
    assert fake.received == []


async def test_unexpected_error_in_a_plugin_route_is_a_500_without_traceback(
    gateway_client: Any, fake_ollama: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("crash", CrashingRoute())])
    resp = await client.get("/boom", headers=bearer(ALICE))
    assert resp.status == 500
    text = await resp.text()
    assert json.loads(text) == {"error": "internal error"}
    assert "Traceback" not in text and "secret traceback" not in text
    assert "a secret traceback detail" in caplog.text  # the operator still sees it


class Crash:
    @hookimpl
    def ollamux_rewrite_request(self, exchange: Exchange) -> None:
        raise KeyError("internal detail")


async def test_unexpected_error_on_the_proxied_path_is_a_500_in_openai_dialect(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"), plugins=[("crash", Crash())])
    body = {"model": "qwen2.5-7b", "messages": []}
    resp = await client.post("/v1/chat/completions", json=body, headers=bearer(ALICE))
    assert resp.status == 500
    text = await resp.text()
    assert "internal detail" not in text
    assert json.loads(text)["error"]["message"] == "internal error"


async def test_unknown_method_is_a_json_405_with_allow(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("r", PluginRoutes())])
    resp = await client.delete("/tasks/status", headers=bearer(ALICE))
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]
    assert await resp.json() == {"error": "method not allowed"}


async def test_responses_carry_security_headers(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.get("/api/tags", headers=bearer(ALICE))
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Server"] == "ollamux"


async def test_a_plugin_routes_own_error_text_is_kept_as_json(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama

    class Strict:
        @hookimpl
        def ollamux_register_routes(self, gateway: Any) -> None:
            async def bad(request: Any) -> Any:
                raise web.HTTPBadRequest(text="invalid task id")

            gateway.routes.add("GET", "/tasks/strict/{x}", bad, action="tasks.read")

    client = await gateway_client(keyed(url), plugins=[("strict", Strict())])
    resp = await client.get("/tasks/strict/x", headers=bearer(ALICE))
    assert resp.status == 400
    assert await resp.json() == {"error": "invalid task id"}
