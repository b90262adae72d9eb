"""Which backend a request goes to: model-aware, loaded models first, least in flight,
then the name; unhealthy backends only when nothing healthy serves the model."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ollamux.testing import gateway_of
from tests.fakes.fleet import calls, start_fakes, until

CHAT = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}
QUIET = {"health_interval_s": 60}


def fleet_config(fakes: dict[str, Any], **backend_opts: Any) -> dict[str, Any]:
    return {
        "backends": [{"name": n, "url": url, **backend_opts} for n, (_, _, url) in fakes.items()],
        "routing": QUIET,
    }


async def probed(client: Any) -> None:
    gw = gateway_of(client)
    await until(lambda: all(b.last_probe is not None for b in gw.backends.values()), what="probe")


async def test_equal_backends_tie_break_on_name(gateway_client: Any, aiohttp_server: Any) -> None:
    fakes = await start_fakes(aiohttp_server, ["b", "a", "c"])
    client = await gateway_client(fleet_config(fakes))
    await probed(client)
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert [len(calls(f, "/api/chat")) for f, _, _ in fakes.values()] == [0, 1, 0]


async def test_least_in_flight_wins(gateway_client: Any, aiohttp_server: Any) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    for fake, _, _ in fakes.values():
        fake.mode = "wait"
    client = await gateway_client(fleet_config(fakes, max_concurrency=4))
    await probed(client)
    gw = gateway_of(client)
    held = [asyncio.create_task(client.post("/api/chat", json=CHAT)) for _ in range(3)]
    await until(lambda: sum(b.in_flight for b in gw.backends.values()) == 3)
    # a (name) first, then b (fewer in flight), then a again (tie, name).
    assert (gw.backends["a"].in_flight, gw.backends["b"].in_flight) == (2, 1)
    for fake, _, _ in fakes.values():
        fake.release.set()
    for resp in await asyncio.gather(*held):
        assert resp.status == 200
        await resp.read()


async def test_backend_with_model_loaded_is_preferred(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    fakes["b"][0].loaded = ["llama3.2:latest"]
    client = await gateway_client(fleet_config(fakes))
    gw = gateway_of(client)
    await until(lambda: gw.backends["b"].loaded_models == {"llama3.2:latest"})
    resp = await client.post("/api/generate", json={"model": "llama3.2:latest", "prompt": "x"})
    assert resp.status == 200
    assert len(calls(fakes["b"][0], "/api/generate")) == 1
    assert calls(fakes["a"][0], "/api/generate") == []


async def test_a_model_served_once_counts_as_loaded_there(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"], models=["m1", "m2"])
    fake_a = fakes["a"][0]
    fake_a.mode = "wait"
    client = await gateway_client(fleet_config(fakes))
    await probed(client)
    held = asyncio.create_task(client.post("/api/generate", json={"model": "m2", "prompt": "x"}))
    await until(lambda: len(calls(fake_a, "/api/generate")) == 1)
    # a is full: m1 goes to b, which then has m1 in memory.
    resp = await client.post("/api/generate", json={"model": "m1", "prompt": "x"})
    assert resp.status == 200
    await resp.read()
    fake_a.release.set()
    assert (await held).status == 200
    await until(lambda: gateway_of(client).backends["a"].in_flight == 0)
    # Both idle now; a would win the tie-break, but b already has m1 loaded.
    resp = await client.post("/api/generate", json={"model": "m1", "prompt": "y"})
    assert resp.status == 200
    assert [r.body["model"] for r in calls(fakes["b"][0], "/api/generate")] == ["m1", "m1"]


async def test_request_goes_to_a_backend_serving_its_model(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    fakes["a"][0].models = ["qwen2.5:7b"]
    fakes["b"][0].models = ["llama3.2:latest"]
    client = await gateway_client(fleet_config(fakes))
    gw = gateway_of(client)
    await until(lambda: gw.backends["a"].models == {"qwen2.5:7b"})
    await until(lambda: gw.backends["b"].models == {"llama3.2:latest"})
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert len(calls(fakes["b"][0], "/api/chat")) == 1
    assert calls(fakes["a"][0], "/api/chat") == []


async def test_unknown_model_is_404_in_ollama_dialect(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    client = await gateway_client(fleet_config(fakes))
    await probed(client)
    resp = await client.post("/api/chat", json={**CHAT, "model": "nope:1b"})
    assert resp.status == 404
    assert await resp.json() == {"error": "model 'nope:1b' not found"}
    assert all(calls(f, "/api/chat") == [] for f, _, _ in fakes.values())


async def test_unknown_model_is_404_in_openai_dialect(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a"])
    client = await gateway_client(fleet_config(fakes))
    await probed(client)
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status == 404
    error = (await resp.json())["error"]
    assert error["code"] == "model_not_found"
    assert error["param"] == "model"
    assert "nope" in error["message"]


async def test_unhealthy_backend_is_avoided(gateway_client: Any, aiohttp_server: Any) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    client = await gateway_client(fleet_config(fakes))
    await probed(client)
    gateway_of(client).backends["a"].healthy = False
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert calls(fakes["a"][0], "/api/chat") == []


async def test_when_every_backend_is_unhealthy_they_are_tried_anyway(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    client = await gateway_client(fleet_config(fakes))
    await probed(client)
    for b in gateway_of(client).backends.values():
        b.healthy = False
    resp = await client.post("/api/chat", json={**CHAT, "stream": False})
    assert resp.status == 200
    assert len(calls(fakes["a"][0], "/api/chat")) == 1


async def test_requests_without_a_model_skip_the_concurrency_cap(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a"])
    fake = fakes["a"][0]
    fake.mode = "wait"
    client = await gateway_client(fleet_config(fakes))
    await probed(client)
    held = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: gateway_of(client).backends["a"].in_flight == 1)
    resp = await client.get("/api/version")
    assert resp.status == 200
    assert await resp.json() == {"version": "0.12.0"}
    fake.release.set()
    done = await held
    assert done.status == 200
    await done.read()


async def test_listing_merges_healthy_backends_only(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b", "c"])
    fakes["a"][0].models = ["m-a"]
    fakes["b"][0].models = ["m-b"]
    fakes["c"][0].models = ["m-c"]
    client = await gateway_client(fleet_config(fakes))
    await probed(client)
    gateway_of(client).backends["c"].healthy = False
    resp = await client.get("/api/tags")
    assert resp.status == 200
    names = sorted(m["name"] for m in json.loads(await resp.text())["models"])
    assert names == ["m-a", "m-b"]
