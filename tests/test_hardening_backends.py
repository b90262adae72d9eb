"""Faults of backends: each test is one way a backend misbehaves, and the gateway staying
bounded and truthful. Real HTTP over loopback, scripted fake backends."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from ollamux import cli
from ollamux.config_loader import ConfigError, build_config
from tests.auth_support import ADMIN, ALICE, BOB, bearer, keyed
from tests.jobs_support import eventually
from tests.test_ops_cli_fleet import ollamux

GENERATE = {"model": "llama3.2:latest", "prompt": "hi", "stream": False}
CHUNK = b"x" * 65536


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class Scripted:
    """A backend answering every request with ``self.status`` and a body that never ends."""

    def __init__(self) -> None:
        self.status = 500
        self.closed = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.endless)
        return app

    async def endless(self, request: web.Request) -> web.StreamResponse:
        """``self.status`` with a body that never ends (until the reader goes away)."""
        await request.read()
        resp = web.StreamResponse(status=self.status)
        resp.content_type = "application/json"
        await resp.prepare(request)
        try:
            await resp.write(b'{"error": "')
            while True:
                await resp.write(CHUNK)
        except (ConnectionError, asyncio.CancelledError):
            self.closed.set()
            raise


async def _scripted(aiohttp_server: Any, status: int) -> tuple[Scripted, str]:
    fake = Scripted()
    fake.status = status
    server = await aiohttp_server(fake.app())
    return fake, str(server.make_url("")).rstrip("/")


# -- 12. unbounded bodies ------------------------------------------------------------------------


async def test_an_endless_5xx_body_is_cut_and_answered_in_bounded_memory(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, url = await _scripted(aiohttp_server, 500)
    client = await gateway_client(keyed(url) | {"routing": {"retries": 0, "read_timeout_s": 5}})
    before = _rss_mb()
    resp = await asyncio.wait_for(
        client.post("/api/generate", json=GENERATE, headers=bearer(ALICE)), 5
    )
    assert resp.status == 500
    assert "error" in await resp.json()
    assert len(await resp.read()) < 256 * 1024
    await asyncio.wait_for(fake.closed.wait(), 5)  # the gateway stopped reading
    assert _rss_mb() - before < 100  # an endless body read whole would add gigabytes


def _process_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_a_served_gateway_stays_under_200_mb_behind_an_endless_5xx_body(
    spawn_gateway: Any, aiohttp_server: Any
) -> None:
    _fake, url = await _scripted(aiohttp_server, 500)
    config = {"backends": [{"url": url}], "routing": {"retries": 0, "read_timeout_s": 5}}
    gateway = await spawn_gateway(config)
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with (
                asyncio.timeout(5),
                session.post(gateway.url + "/api/generate", json=GENERATE) as resp,
            ):
                assert resp.status == 500
                await resp.read()
    assert gateway.proc is not None
    assert _process_rss_mb(gateway.proc.pid) < 200


async def test_an_endless_4xx_body_is_cut_and_relayed_in_the_dialect(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, url = await _scripted(aiohttp_server, 400)
    client = await gateway_client(
        keyed(url, api="openai") | {"routing": {"retries": 0, "read_timeout_s": 5}}
    )
    body = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}
    resp = await asyncio.wait_for(
        client.post("/v1/chat/completions", json=body, headers=bearer(ALICE)), 5
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["type"] == "invalid_request_error"
    await asyncio.wait_for(fake.closed.wait(), 5)


async def test_an_endless_listing_counts_as_a_failed_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, url = await _scripted(aiohttp_server, 200)
    client = await gateway_client(keyed(url) | {"routing": {"read_timeout_s": 5}})
    before = _rss_mb()
    resp = await asyncio.wait_for(client.get("/api/tags", headers=bearer(ALICE)), 10)
    assert resp.status == 502
    assert "error" in await resp.json()
    await asyncio.wait_for(fake.closed.wait(), 5)
    assert _rss_mb() - before < 100


# -- 17. timeouts ---------------------------------------------------------------------------------


class StallingError:
    """A backend that lists its model, and answers every request with the head of a 500
    and part of its body, then goes silent."""

    model = "qwen2.5-7b"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/tags", self.tags)
        app.router.add_get("/api/ps", self.tags)
        app.router.add_get("/v1/models", self.models)
        app.router.add_route("POST", "/{tail:.*}", self.stall)
        return app

    async def tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": self.model, "model": self.model}]})

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model}]})

    async def stall(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=500, headers={"Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b'{"err')
        await asyncio.sleep(3600)
        return resp


async def test_a_last_attempt_that_timed_out_is_a_504(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    server = await aiohttp_server(StallingError().app())
    url = str(server.make_url("")).rstrip("/")
    client = await gateway_client(keyed(url) | {"routing": {"retries": 0, "read_timeout_s": 0.3}})
    body = GENERATE | {"model": StallingError.model}
    resp = await client.post("/api/generate", json=body, headers=bearer(BOB))
    assert resp.status == 504
    assert "timed out" in (await resp.json())["error"]


async def test_a_silent_backend_after_a_timed_out_one_is_a_504_in_openai_dialect(
    gateway_client: Any, aiohttp_server: Any, fake_openai: Any
) -> None:
    server = await aiohttp_server(StallingError().app())
    stalling = str(server.make_url("")).rstrip("/")
    fake, silent = fake_openai
    fake.mode = "hang"
    config = keyed(silent, api="openai") | {"routing": {"retries": 1, "read_timeout_s": 0.3}}
    config["backends"] = [{"url": silent, "api": "openai"}, {"url": stalling, "api": "openai"}]
    client = await gateway_client(config)
    body = {"model": StallingError.model, "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.post("/v1/chat/completions", json=body, headers=bearer(BOB))
    assert resp.status == 504
    assert (await resp.json())["error"]["type"] == "timeout_error"


# -- 20. the fleet CLI without a key -------------------------------------------------------------


async def test_the_fleet_cli_without_a_key_says_none_was_given(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    code, out = await ollamux(str(client.make_url("")), "models")
    assert code == 1
    assert "none was given" in out and "$OLLAMUX_ADMIN_KEY" in out
    assert "refused the admin key" not in out


async def test_the_fleet_cli_with_a_wrong_key_says_it_was_refused(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    code, out = await ollamux(str(client.make_url("")), "models", "--key", "wrong-key-123")
    assert code == 1
    assert "refused the admin key" in out


# -- 19. backend URL passwords -------------------------------------------------------------------

PASSWORD = "pw-very-secret-42"


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://user:{PASSWORD}@")


async def test_a_backend_url_password_is_masked_in_the_backend_table_and_logs(
    gateway_client: Any, fake_ollama: Any, caplog: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "status"  # its listing fails: the probe's error quotes the URL
    caplog.set_level(logging.INFO)
    config = keyed(url) | {"routing": {"health_interval_s": 0.05}}
    config["backends"] = [{"url": _with_password(url)}]
    client = await gateway_client(config)

    async def failed_probe() -> Any:
        resp = await client.get("/ollamux/backends", headers=bearer(ADMIN))
        (backend,) = (await resp.json())["backends"]
        return backend if backend["last_error"] else None

    backend = await eventually(failed_probe)
    assert PASSWORD not in json.dumps(backend)
    assert backend["url"] == _with_password(url).replace(PASSWORD, "***")
    assert "GET http://user:***@" in backend["last_error"]
    assert "is unhealthy" in caplog.text
    assert PASSWORD not in caplog.text


async def test_the_startup_log_masks_a_backend_url_password(
    spawn_gateway: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    gateway = await spawn_gateway({"backends": [{"url": _with_password(url)}]})
    await gateway.wait_for(lambda: "listening" in gateway.log(), "the startup line")
    assert "user:***@" in gateway.log()
    assert PASSWORD not in gateway.log()


def test_check_masks_secret_named_fields_at_any_depth_of_plugin_config(
    tmp_path: Any, capsys: Any, monkeypatch: Any
) -> None:
    monkeypatch.delenv("OLLAMUX_CONFIG", raising=False)
    plugin = {
        "token": "tok-secret-1",
        "nested": {"password": "pw-secret-2", "list": [{"client_secret": "cs-secret-3"}]},
        "upstream": {"api_key": "ak-secret-4", "max_tokens": 128},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"plugins": {"config": {"mine": plugin}}}))
    assert cli.main(["check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    for secret in ("tok-secret-1", "pw-secret-2", "cs-secret-3", "ak-secret-4"):
        assert secret not in out
    assert "max_tokens: 128" in out


@pytest.mark.parametrize(
    "extra", [{"api_key": "k-123"}, {"headers": {"authorization": "Bearer k-123"}}]
)
def test_a_url_with_credentials_and_an_api_key_is_a_config_error(extra: dict[str, Any]) -> None:
    backend = {"url": f"http://user:{PASSWORD}@127.0.0.1:1"} | extra
    with pytest.raises(ConfigError) as err:
        build_config({"backends": [backend]})
    assert err.value.key == "backends[0].url"
    assert PASSWORD not in str(err.value)
    assert len(str(err.value).splitlines()) == 1


async def test_an_endless_probe_answer_marks_the_backend_unhealthy_in_bounded_memory(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fake, url = await _scripted(aiohttp_server, 200)
    before = _rss_mb()
    client = await gateway_client(keyed(url) | {"routing": {"health_interval_s": 0.05}})

    async def probe_failed() -> Any:
        resp = await client.get("/ollamux/backends", headers=bearer(ADMIN))
        (backend,) = (await resp.json())["backends"]
        return backend["last_error"]

    assert "larger than" in await eventually(probe_failed)
    await asyncio.wait_for(fake.closed.wait(), 5)
    assert _rss_mb() - before < 100


# -- mixed fleets -------------------------------------------------------------------------


async def test_a_request_without_a_model_goes_to_an_ollama_backend_in_a_mixed_fleet(
    gateway_client: Any, fake_ollama: Any, fake_openai: Any
) -> None:
    _ollama, ollama_url = fake_ollama
    _openai, openai_url = fake_openai
    client = await gateway_client(
        {
            "backends": [
                {"name": "a-openai", "url": openai_url, "api": "openai"},  # first by name
                {"name": "b-ollama", "url": ollama_url},
            ]
        }
    )
    for _ in range(3):
        resp = await client.head("/api/version")
        assert resp.status == 200
