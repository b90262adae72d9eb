"""Failures before the first byte are retried on another backend and mark the failed one
unhealthy; 4xx answers and failures after the first byte are not retried."""

from __future__ import annotations

import json
from typing import Any

from ollamux.testing import gateway_of
from tests.fakes.fleet import calls, start_fakes, until

CHAT = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}


async def two_backends(
    gateway_client: Any, aiohttp_server: Any, **routing: Any
) -> tuple[Any, dict[str, Any]]:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    client = await gateway_client(
        {
            "backends": [{"name": n, "url": u} for n, (_, _, u) in fakes.items()],
            "routing": {"health_interval_s": 60, **routing},
        }
    )
    gw = gateway_of(client)
    await until(lambda: all(b.last_probe is not None for b in gw.backends.values()))
    return client, fakes


async def test_connect_error_is_retried_on_another_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await two_backends(gateway_client, aiohttp_server)
    await fakes["a"][1].close()
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert (await resp.json())["message"]["content"] == "Hello there, friend!"
    assert len(calls(fakes["b"][0], "/api/chat")) == 1
    a = gateway_of(client).backends["a"]
    assert a.healthy is False
    assert a.failures == 1


async def test_server_error_is_retried_and_marks_the_backend_unhealthy(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await two_backends(gateway_client, aiohttp_server)
    fake_a = fakes["a"][0]
    fake_a.mode, fake_a.status = "status", 500
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert len(calls(fake_a, "/api/chat")) == 1
    assert len(calls(fakes["b"][0], "/api/chat")) == 1
    assert gateway_of(client).backends["a"].healthy is False
    # The next request does not go near a.
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert len(calls(fake_a, "/api/chat")) == 1


async def test_retries_stop_at_the_configured_count(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b", "c"])
    client = await gateway_client(
        {
            "backends": [{"name": n, "url": u} for n, (_, _, u) in fakes.items()],
            "routing": {"health_interval_s": 60, "retries": 1},
        }
    )
    gw = gateway_of(client)
    await until(lambda: all(b.last_probe is not None for b in gw.backends.values()))
    for _, server, _ in fakes.values():
        await server.close()
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 502
    assert "unreachable" in (await resp.json())["error"]
    assert [b.healthy for b in gw.backends.values()] == [False, False, True]


async def test_every_attempt_failing_is_502(gateway_client: Any, aiohttp_server: Any) -> None:
    client, fakes = await two_backends(gateway_client, aiohttp_server)
    for _, server, _ in fakes.values():
        await server.close()
    resp = await client.post("/v1/chat/completions", json=CHAT)
    assert resp.status == 502
    assert (await resp.json())["error"]["type"] == "api_error"


async def test_client_error_is_not_retried_and_keeps_its_status(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await two_backends(gateway_client, aiohttp_server)
    fake_a = fakes["a"][0]
    fake_a.mode, fake_a.status = "status", 400
    fake_a.status_body = {"error": "invalid options"}
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 400
    assert await resp.json() == {"error": "invalid options"}
    assert calls(fakes["b"][0], "/api/chat") == []
    assert gateway_of(client).backends["a"].healthy is True


async def test_failure_after_the_first_byte_ends_the_stream_with_an_error_line(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await two_backends(gateway_client, aiohttp_server)
    fakes["a"][0].mode = "die"
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 200
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert "".join(x["message"]["content"] for x in lines[:-1]) == "Hello there"
    assert "error" in lines[-1]
    assert calls(fakes["b"][0], "/api/chat") == []
    assert gateway_of(client).backends["a"].in_flight == 0


async def test_busy_backend_is_cooled_down_not_ejected(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await two_backends(gateway_client, aiohttp_server, busy_cooldown_s=30)
    fake_a = fakes["a"][0]
    fake_a.mode, fake_a.status = "status", 503
    fake_a.status_body = {
        "error": "server busy, please try again.  maximum pending requests exceeded"
    }
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert len(calls(fakes["b"][0], "/api/chat")) == 1
    a = gateway_of(client).backends["a"]
    assert a.healthy is True
    assert a.cooling_down
    backends = (await (await client.get("/ollamux/backends")).json())["backends"]
    assert [x["cooling_down"] for x in backends] == [True, False]


async def test_failed_backend_returns_after_a_successful_probe(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await two_backends(gateway_client, aiohttp_server, health_interval_s=0.05)
    fake_a = fakes["a"][0]
    fake_a.mode, fake_a.status = "status", 500
    gw = gateway_of(client)
    await until(lambda: gw.backends["a"].healthy is False, what="probe sees the 500")
    fake_a.mode = "ok"
    await until(lambda: gw.backends["a"].healthy is True, what="probe brings a back")
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert len(calls(fake_a, "/api/chat")) == 1


async def test_every_backend_busy_answers_503_with_retry_after(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await two_backends(gateway_client, aiohttp_server)
    for fake, _server, _url in fakes.values():
        fake.mode, fake.status = "status", 503
        fake.status_body = {"error": "server busy, please try again."}
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json()) == {"error": "server busy, please try again."}
