"""A real ``ollamux serve`` process: graceful shutdown on SIGTERM, reload on SIGHUP."""

from __future__ import annotations

import json
import signal
from typing import Any

import aiohttp
import pytest

pytestmark = pytest.mark.slow

MODEL = "llama3.2:latest"


async def refuses_connections(url: str) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(url + "/ollamux/stats") as resp:
            await resp.read()
    except aiohttp.ClientConnectorError:
        return True
    return False


async def test_sigterm_lets_a_stream_in_flight_finish(spawn_gateway: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"
    gw = await spawn_gateway({"backends": [{"name": "a", "url": url}]})
    async with aiohttp.ClientSession() as client:
        resp = await client.post(gw.url + "/api/chat", json={"model": MODEL, "messages": []})
        first = await resp.content.readline()
        gw.signal(signal.SIGTERM)
        await gw.wait_for(lambda: refuses_connections(gw.url), "the listener to close")
        fake.release.set()
        rest = await resp.read()
    lines = [json.loads(x) for x in (first + rest).splitlines()]
    assert lines[-1]["done"] is True
    assert "".join(x["message"]["content"] for x in lines) == "Hello there, friend!"
    assert await gw.wait_exit() == 0
    assert "draining requests in flight" in gw.log()


async def test_a_stream_still_running_at_the_shutdown_timeout_is_cut(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "hang_body"
    gw = await spawn_gateway(
        {"server": {"shutdown_timeout_s": 0.5}, "backends": [{"name": "a", "url": url}]}
    )
    async with aiohttp.ClientSession() as client:
        resp = await client.post(gw.url + "/api/chat", json={"model": MODEL, "messages": []})
        await resp.content.readline()
        gw.signal(signal.SIGTERM)
        assert await gw.wait_exit() == 0
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    await gw.wait_for(fake.disconnected.is_set, "the upstream request to be cancelled")


async def test_sighup_adds_one_backend_and_removes_another(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"
    config: dict[str, Any] = {"backends": [{"name": "a", "url": url}, {"name": "b", "url": url}]}
    gw = await spawn_gateway(config)
    async with aiohttp.ClientSession() as client:
        resp = await client.post(gw.url + "/api/chat", json={"model": MODEL, "messages": []})
        first = await resp.content.readline()
        config["backends"] = [{"name": "b", "url": url}, {"name": "c", "url": url}]
        config["server"] = {"port": gw.port}
        config["tasks"] = {"store": "memory"}
        config["plugins"] = {"autoload": False}
        gw.write_config(config)
        gw.signal(signal.SIGHUP)

        async def backends() -> list[str]:
            return sorted(b["name"] for b in (await gw.stats())["backends"])

        async def reloaded() -> bool:
            return await backends() == ["b", "c"]

        await gw.wait_for(reloaded, "backends b and c")
        fake.release.set()
        rest = await resp.read()  # the stream begun before the reload is not dropped
    assert json.loads((first + rest).splitlines()[-1])["done"] is True
    assert "config reloaded; backends added: c; removed: a" in gw.log()


async def test_sighup_refuses_a_broken_config_and_keeps_the_old_one(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    gw = await spawn_gateway({"backends": [{"name": "a", "url": url}]})
    gw.write_raw_config(
        f"server: {{port: {gw.port}}}\nbackends:\n  - {{name: a, url: {url}, colour: red}}\n"
    )
    gw.signal(signal.SIGHUP)
    await gw.wait_for(lambda: "config reload refused" in gw.log(), "the refusal to be logged")
    assert "backends[0].colour: unknown key" in gw.log()
    assert [b["name"] for b in (await gw.stats())["backends"]] == ["a"]
    async with aiohttp.ClientSession() as client:
        body = {"model": MODEL, "prompt": "hi", "stream": False}
        async with client.post(gw.url + "/api/generate", json=body) as resp:
            assert resp.status == 200


async def test_sigterm_puts_a_running_job_back_in_the_queue(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "hang"
    config: dict[str, Any] = {
        "server": {"shutdown_timeout_s": 0.5},
        "backends": [{"name": "a", "url": url}],
        "jobs": {"store": "sqlite", "default_model": MODEL},
    }
    first = await spawn_gateway(dict(config))
    async with aiohttp.ClientSession() as client:
        async with client.post(first.url + "/api/v1/prompt", json={"prompt": "hi"}) as resp:
            job_id = (await resp.json())["id"]

        async def status(gw: Any) -> str:
            async with client.get(f"{gw.url}/api/v1/prompt/{job_id}/status") as resp:
                return str((await resp.json())["status"])

        async def processing() -> bool:
            return await status(first) == "processing"

        await first.wait_for(processing, "the job to run")
        # "processing" comes as the job is taken, before its call reaches the backend
        await first.wait_for(fake.started.is_set, "the job's call to reach the backend")
        first.signal(signal.SIGTERM)
        assert await first.wait_exit() == 0
        await first.wait_for(fake.disconnected.is_set, "the job's upstream call to be cancelled")

        fake.mode = "ok"
        second = await spawn_gateway(dict(config))  # same jobs database

        async def completed() -> bool:
            return await status(second) == "completed"

        await second.wait_for(completed, "the requeued job to complete on the next start")
