"""Admin and visibility routes (backend table, health, drain) and model management that
goes only to the backend it names."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import ollama
import pytest

from ollamux.testing import gateway_of
from tests.fakes.fleet import calls, start_fakes, until

CHAT = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}


async def fleet(gateway_client: Any, aiohttp_server: Any, names: list[str]) -> tuple[Any, Any]:
    fakes = await start_fakes(aiohttp_server, names)
    client = await gateway_client(
        {
            "backends": [{"name": n, "url": u} for n, (_, _, u) in fakes.items()],
            "routing": {"health_interval_s": 60},
        }
    )
    gw = gateway_of(client)
    await until(lambda: all(b.last_probe is not None for b in gw.backends.values()))
    return client, fakes


async def test_backend_table_shows_state_of_each_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    fakes["a"][0].loaded = ["llama3.2:latest"]
    client = await gateway_client(
        {
            "backends": [
                {"name": n, "url": u, "max_concurrency": 3} for n, (_, _, u) in fakes.items()
            ],
            "routing": {"health_interval_s": 60},
        }
    )
    gw = gateway_of(client)
    await until(lambda: all(b.last_probe is not None for b in gw.backends.values()))
    for path in ("/ollamux/backends", "/__proxy/backends"):
        resp = await client.get(path)
        assert resp.status == 200
        doc = await resp.json()
        a, b = doc["backends"]
        assert a["name"] == "a" and a["url"] == fakes["a"][2]
        assert a["api"] == "ollama"
        assert a["healthy"] is True and a["in_flight"] == 0 and a["max_concurrency"] == 3
        assert a["models"] == ["llama3.2:latest"]
        assert a["loaded_models"] == ["llama3.2:latest"] and b["loaded_models"] == []
        assert isinstance(a["last_probe"], float) and a["failures"] == 0
        assert doc["queue"]["depth"] == 0


async def test_health_is_ok_degraded_or_unavailable(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, _ = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    gw = gateway_of(client)
    resp = await client.get("/ollamux/health")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"
    gw.backends["a"].healthy = False
    resp = await client.get("/__proxy/health")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["status"] == "degraded"
    assert doc["backends"] == {"total": 2, "healthy": 1, "draining": 0}
    gw.backends["b"].healthy = False
    resp = await client.get("/ollamux/health")
    assert resp.status == 503
    assert (await resp.json())["status"] == "unavailable"


async def test_drain_lets_in_flight_finish_and_sends_new_work_elsewhere(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    fake_a = fakes["a"][0]
    fake_a.mode = "wait"
    held = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: len(calls(fake_a, "/api/chat")) == 1)
    resp = await client.post("/ollamux/backends/a/drain")
    assert resp.status == 200
    assert (await resp.json())["draining"] is True
    fake_a.release.set()
    done = await held
    assert done.status == 200
    assert (await done.text()).count('"done": true') == 1
    for _ in range(2):
        resp = await client.post("/api/chat", json={**CHAT, "stream": False})
        assert resp.status == 200
    assert len(calls(fake_a, "/api/chat")) == 1
    assert len(calls(fakes["b"][0], "/api/chat")) == 2
    resp = await client.post("/ollamux/backends/a/undrain")
    assert (await resp.json())["draining"] is False
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert len(calls(fake_a, "/api/chat")) == 2


async def test_drain_of_every_backend_is_503(gateway_client: Any, aiohttp_server: Any) -> None:
    client, _ = await fleet(gateway_client, aiohttp_server, ["a"])
    await client.post("/ollamux/backends/a/drain")
    resp = await client.post("/api/chat", json=CHAT)
    assert resp.status == 503
    assert "draining" in (await resp.json())["error"]
    assert "Retry-After" in resp.headers


async def test_drain_of_unknown_backend_is_404(gateway_client: Any, aiohttp_server: Any) -> None:
    client, _ = await fleet(gateway_client, aiohttp_server, ["a"])
    resp = await client.post("/ollamux/backends/zz/drain")
    assert resp.status == 404
    assert "zz" in (await resp.json())["error"]


async def test_pull_without_a_backend_header_is_400_when_several_backends(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    resp = await client.post("/api/pull", json={"model": "llama3.2"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert "X-Ollamux-Backend" in error and "X-Ollamux-All" in error
    assert all(calls(f, "/api/pull") == [] for f, _, _ in fakes.values())


async def test_management_goes_to_the_named_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    headers = {"X-Ollamux-Backend": "b"}
    resp = await client.post("/api/pull", json={"model": "llama3.2"}, headers=headers)
    assert resp.status == 200
    assert json.loads((await resp.text()).splitlines()[-1]) == {"status": "success"}
    resp = await client.post(
        "/api/copy", json={"source": "llama3.2", "destination": "x"}, headers=headers
    )
    assert resp.status == 200
    resp = await client.delete("/api/delete", json={"model": "x"}, headers=headers)
    assert resp.status == 200
    fake_a, fake_b = fakes["a"][0], fakes["b"][0]
    assert [
        r.path for r in fake_b.received if r.path.startswith("/api/") and r.method != "GET"
    ] == [
        "/api/pull",
        "/api/copy",
        "/api/delete",
    ]
    assert not [r for r in fake_a.received if r.method != "GET"]
    assert "X-Ollamux-Backend" not in calls(fake_b, "/api/delete")[0].headers


async def test_management_naming_an_unknown_backend_is_400(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, _ = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    resp = await client.post(
        "/api/pull", json={"model": "llama3.2"}, headers={"X-Ollamux-Backend": "zz"}
    )
    assert resp.status == 400
    assert "unknown backend 'zz'" in (await resp.json())["error"]


async def test_management_with_a_single_backend_needs_no_header(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await fleet(gateway_client, aiohttp_server, ["a"])
    resp = await client.post("/api/pull", json={"model": "llama3.2", "stream": False})
    assert resp.status == 200
    assert len(calls(fakes["a"][0], "/api/pull")) == 1


async def test_pull_on_all_backends_streams_each_backends_progress(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    resp = await client.post(
        "/api/pull", json={"model": "llama3.2"}, headers={"X-Ollamux-All": "1"}
    )
    assert resp.status == 200
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert lines[-1] == {"status": "success"}
    for name in ("a", "b"):
        mine = [x for x in lines if x.get("backend") == name]
        assert mine[0]["status"] == "pulling manifest"
        assert mine[-1]["status"] == "success"
        assert len(calls(fakes[name][0], "/api/pull")) == 1


async def test_pull_on_all_reports_a_backend_that_fails(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    await fakes["b"][1].close()
    resp = await client.post(
        "/api/pull", json={"model": "llama3.2"}, headers={"X-Ollamux-All": "1"}
    )
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert any(x.get("backend") == "b" and "error" in x for x in lines)
    assert lines[-1] == {"error": "pull failed on: b"}


async def test_delete_on_all_backends_answers_for_each(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    resp = await client.delete(
        "/api/delete", json={"model": "llama3.2"}, headers={"X-Ollamux-All": "1"}
    )
    assert resp.status == 200
    doc = await resp.json()
    assert doc["status"] == "success"
    assert sorted(doc["backends"]) == ["a", "b"]
    assert all(len(calls(f, "/api/delete")) == 1 for f, _, _ in fakes.values())


async def test_all_flag_is_refused_for_create(gateway_client: Any, aiohttp_server: Any) -> None:
    client, _ = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    resp = await client.post(
        "/api/create", json={"model": "x", "from": "llama3.2"}, headers={"X-Ollamux-All": "1"}
    )
    assert resp.status == 400
    assert "only for /api/pull and /api/delete" in (await resp.json())["error"]


async def test_the_ollama_client_pulls_on_every_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    sdk = ollama.AsyncClient(host=str(client.make_url("")), headers={"X-Ollamux-All": "1"})
    statuses = [p.status async for p in await sdk.pull("llama3.2", stream=True)]
    assert statuses[-1] == "success"
    assert statuses.count("pulling manifest") == 2
    assert all(len(calls(f, "/api/pull")) == 1 for f, _, _ in fakes.values())


async def test_the_ollama_client_is_told_to_name_a_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, _ = await fleet(gateway_client, aiohttp_server, ["a", "b"])
    sdk = ollama.AsyncClient(host=str(client.make_url("")))
    with pytest.raises(ollama.ResponseError) as caught:
        await sdk.delete("llama3.2")
    assert caught.value.status_code == 400
    assert "X-Ollamux-Backend" in caught.value.error
