"""``ollamux models | pull | rm`` run as real commands against a gateway on loopback."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import pytest
from aiohttp import web

from ollamux.testing import gateway_of
from tests.fakes.fleet import until
from tests.fakes.ollama_backend import FakeOllama

MODEL = "llama3.2:latest"


@pytest.fixture
async def two_fakes(aiohttp_server: Any) -> list[tuple[FakeOllama, str]]:
    out = []
    for name in ("gpu1", "gpu2"):
        fake = FakeOllama(name=name)
        server = await aiohttp_server(fake.app())
        out.append((fake, str(server.make_url("")).rstrip("/")))
    return out


async def ollamux(url: str, *args: str) -> tuple[int, str]:
    """Run ``ollamux <args> --url <gateway>``; returns the exit code and the output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OLLAMUX_")}
    env["COLUMNS"] = "160"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ollamux",
        *args,
        "--url",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def fleet_gateway(gateway_client: Any, fakes: list[tuple[FakeOllama, str]]) -> Any:
    backends = [{"name": fake.name, "url": url, "models": [MODEL]} for fake, url in fakes]
    return await gateway_client({"backends": backends})


async def test_pull_all_shows_every_backend_finishing(
    gateway_client: Any, two_fakes: list[tuple[FakeOllama, str]]
) -> None:
    client = await fleet_gateway(gateway_client, two_fakes)
    code, out = await ollamux(str(client.make_url("")), "pull", "qwen3:0.6b", "--all")
    print(out)  # the captured CLI output, shown with -s
    assert code == 0
    assert "gpu1: qwen3:0.6b pulled" in out
    assert "gpu2: qwen3:0.6b pulled" in out
    assert out.count("100.0%") >= 2


async def test_pull_all_sends_one_pull_to_each_backend(
    gateway_client: Any, two_fakes: list[tuple[FakeOllama, str]]
) -> None:
    client = await fleet_gateway(gateway_client, two_fakes)
    code, _out = await ollamux(str(client.make_url("")), "pull", "qwen3:0.6b", "--all")
    assert code == 0
    for fake, _ in two_fakes:
        pulls = [r for r in fake.received if r.path == "/api/pull"]
        assert [r.body["model"] for r in pulls] == ["qwen3:0.6b"]


async def test_pull_to_one_named_backend_only_touches_it(
    gateway_client: Any, two_fakes: list[tuple[FakeOllama, str]]
) -> None:
    client = await fleet_gateway(gateway_client, two_fakes)
    code, out = await ollamux(str(client.make_url("")), "pull", "qwen3:0.6b", "--backend", "gpu2")
    assert code == 0, out
    assert "gpu2: qwen3:0.6b pulled" in out
    assert [r.path for r in two_fakes[0][0].received if r.path == "/api/pull"] == []


async def test_pull_without_a_target_on_a_fleet_says_what_to_add(
    gateway_client: Any, two_fakes: list[tuple[FakeOllama, str]]
) -> None:
    client = await fleet_gateway(gateway_client, two_fakes)
    code, out = await ollamux(str(client.make_url("")), "pull", "qwen3:0.6b")
    assert code == 1
    assert "--backend NAME or use --all" in out


async def test_pull_reports_an_error_line_from_the_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    async def failing_pull(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        await resp.write(b'{"status": "pulling manifest"}\n')
        await resp.write(b'{"error": "pull model manifest: file does not exist"}\n')
        return resp

    app = web.Application()
    app.router.add_post("/api/pull", failing_pull)
    server = await aiohttp_server(app)
    client = await gateway_client(
        {"backends": [{"name": "solo", "url": str(server.make_url("")).rstrip("/")}]}
    )
    code, out = await ollamux(str(client.make_url("")), "pull", "nope:1b")
    assert code == 1
    assert "solo: nope:1b failed: pull model manifest: file does not exist" in out


async def test_models_lists_which_backend_has_which_model(
    gateway_client: Any, two_fakes: list[tuple[FakeOllama, str]]
) -> None:
    two_fakes[1][0].loaded = [MODEL]  # gpu2 reports the model loaded in /api/ps
    client = await fleet_gateway(gateway_client, two_fakes)
    await until(lambda: gateway_of(client).backends["gpu2"].loaded_models == {MODEL})
    code, out = await ollamux(str(client.make_url("")), "models")
    assert code == 0
    (row,) = [line for line in out.splitlines() if MODEL in line]
    assert row.index("present") < row.index("loaded")
    assert "gpu1" in out and "gpu2" in out


async def test_rm_deletes_a_model_where_it_is(
    gateway_client: Any, two_fakes: list[tuple[FakeOllama, str]]
) -> None:
    client = await fleet_gateway(gateway_client, two_fakes)
    code, out = await ollamux(str(client.make_url("")), "rm", MODEL)
    assert code == 0, out
    assert "gpu1: llama3.2:latest deleted" in out
    assert "gpu2: llama3.2:latest deleted" in out
    deletes = [r for fake, _ in two_fakes for r in fake.received if r.path == "/api/delete"]
    assert [r.body["model"] for r in deletes] == [MODEL, MODEL]


async def test_rm_of_a_model_nobody_has_fails(
    gateway_client: Any, two_fakes: list[tuple[FakeOllama, str]]
) -> None:
    client = await fleet_gateway(gateway_client, two_fakes)
    code, out = await ollamux(str(client.make_url("")), "rm", "ghost:1b")
    assert code == 1
    assert "ghost:1b: not on any backend" in out


async def test_an_unreachable_gateway_is_a_clear_error() -> None:
    from tests.fakes.gateway_process import free_port

    code, out = await ollamux(f"http://127.0.0.1:{free_port()}", "models")
    assert code == 1
    assert "cannot reach the gateway" in out


async def test_a_pulled_model_is_routable_at_once_without_waiting_for_a_probe(
    gateway_client: Any, two_fakes: list[tuple[FakeOllama, str]]
) -> None:
    backends = [{"name": fake.name, "url": url} for fake, url in two_fakes]
    client = await gateway_client({"backends": backends, "routing": {"health_interval_s": 3600}})
    await until(lambda: all(b.models for b in gateway_of(client).backends.values()))
    chat = {"model": "qwen3:0.6b", "messages": [], "stream": False}
    assert (await client.post("/api/chat", json=chat)).status == 404
    pull = {"model": "qwen3:0.6b", "stream": False}
    resp = await client.post("/api/pull", json=pull, headers={"X-Ollamux-Backend": "gpu2"})
    assert resp.status == 200, await resp.text()
    assert "qwen3:0.6b" in two_fakes[1][0].models
    # The backend is probed again as the pull ends, not at the next interval (an hour).
    gpu2 = gateway_of(client).backends["gpu2"]
    await until(lambda: "qwen3:0.6b" in gpu2.models, what="gpu2 re-probed after the pull")
    resp = await client.post("/api/chat", json=chat)
    assert resp.status == 200
    assert [r.path for r in two_fakes[1][0].received if r.path == "/api/chat"] == ["/api/chat"]
    listed = await (await client.get("/api/tags")).json()
    assert "qwen3:0.6b" in [m["name"] for m in listed["models"]]


async def test_a_failed_pull_does_not_mark_the_backend_down(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    async def refuse_pull(request: web.Request) -> web.Response:
        return web.json_response({"error": "pull model manifest: 500 from registry"}, status=500)

    async def tags(request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": MODEL, "model": MODEL}]})

    async def ps(request: web.Request) -> web.Response:
        return web.json_response({"models": []})

    app = web.Application()
    app.router.add_get("/api/tags", tags)
    app.router.add_get("/api/ps", ps)
    app.router.add_post("/api/pull", refuse_pull)
    server = await aiohttp_server(app)
    client = await gateway_client(
        {"backends": [{"name": "solo", "url": str(server.make_url("")).rstrip("/")}]}
    )
    resp = await client.post("/api/pull", json={"model": "nope:1b", "stream": False})
    assert resp.status == 500
    (solo,) = gateway_of(client).backends.values()
    assert solo.healthy
