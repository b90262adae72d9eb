"""The contract: exactly one ``ollamux.access`` line per HTTP response, whoever answered
it — the path guard, the identity middleware, the body limit, the router, a plugin route,
the proxy — and however it ended, a client gone mid-stream included."""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import pytest

from tests.auth_support import ALICE, bearer, keyed, raw_request
from tests.jobs_support import eventually

MODEL = "llama3.2:latest"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
_LINE = re.compile(r'^\S+ "(\S+) (\S+)" (\d+)')


@pytest.fixture
def access_lines(caplog: pytest.LogCaptureFixture) -> Any:
    """A function returning ``(method, path, status)`` of every access line so far."""
    caplog.set_level(logging.INFO, logger="ollamux.access")

    def lines() -> list[tuple[str, str, int]]:
        found = []
        for record in caplog.records:
            if record.name == "ollamux.access":
                match = _LINE.match(record.getMessage())
                assert match is not None, record.getMessage()
                found.append((match[1], match[2], int(match[3])))
        return found

    return lines


async def test_a_redirect_to_the_canonical_path_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    status, headers, _body = await raw_request(client, "GET", "//api/tags")
    assert (status, headers["location"]) == (308, "/api/tags")
    assert access_lines() == [("GET", "//api/tags", 308)]


async def test_bad_json_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post(
        "/api/chat", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    await resp.read()
    assert access_lines() == [("POST", "/api/chat", 400)]


async def test_a_missing_key_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 401
    await resp.read()
    assert access_lines() == [("POST", "/api/chat", 401)]


async def test_an_ordinary_key_on_an_admin_endpoint_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    resp = await client.get("/ollamux/backends", headers=bearer(ALICE))
    assert resp.status == 403
    await resp.read()
    assert access_lines() == [("GET", "/ollamux/backends", 403)]


async def test_a_body_over_the_limit_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], "server": {"max_body_mb": 0.001}})
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 4096}]}
    resp = await client.post("/api/chat", json=big)
    assert resp.status == 413
    await resp.read()
    assert access_lines() == [("POST", "/api/chat", 413)]


async def test_an_unknown_path_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.get("/no/such/page")
    assert resp.status == 404
    await resp.read()
    assert access_lines() == [("GET", "/no/such/page", 404)]


async def test_a_plugin_route_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.get("/tasks/status")
    assert resp.status == 200
    await resp.read()
    assert access_lines() == [("GET", "/tasks/status", 200)]


async def test_a_proxied_stream_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 200
    assert len((await resp.read()).splitlines()) == 5  # four words and the final line
    assert access_lines() == [("POST", "/api/chat", 200)]


async def test_a_stream_the_client_abandons_has_one_line(
    gateway_client: Any, fake_ollama: Any, access_lines: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fake, url = fake_ollama
    fake.mode = "hang_body"
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 200
    assert b"Hello" in await asyncio.wait_for(resp.content.readline(), 10)
    await asyncio.wait_for(fake.started.wait(), 10)
    resp.close()  # the client goes away mid-stream

    async def logged() -> list[tuple[str, str, int]]:
        return [line for line in access_lines() if line[1] == "/api/chat"]

    ((method, _path, status),) = await eventually(logged)
    assert method == "POST"
    assert status in (200, 499)
    # A later request gets its own line, and the abandoned one has still only one.
    assert (await client.get("/ollamux/health")).status == 200
    await eventually(lambda: _has(access_lines, "/ollamux/health"))
    assert len(await logged()) == 1
    (message,) = [
        r.getMessage()
        for r in caplog.records
        if r.name == "ollamux.access" and "/api/chat" in r.getMessage()
    ]
    assert "outcome=CANCELLED" in message.split()


async def _has(access_lines: Any, path: str) -> bool:
    return any(line[1] == path for line in access_lines())
