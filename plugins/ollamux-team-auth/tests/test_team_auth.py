"""Team auth: only configured teams get in, admin actions are the admin team's, jobs run
as the team that submitted them."""

from __future__ import annotations

import asyncio
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import ollamux_team_auth
import pytest
import yaml
from aiohttp import web

from ollamux import GatewayError
from ollamux.exchange import Principal
from ollamux.reload import reload_config
from ollamux.testing import gateway_of, test_config


class Backend:
    """A tiny Ollama-like backend that remembers which requests reached it."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.paths.append(request.path)
        return web.json_response({"model": body["model"], "response": "hi", "done": True})

    async def tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": "m:latest", "model": "m:latest"}]})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/generate", self.generate)
        app.router.add_get("/api/tags", self.tags)
        return app


async def _client(
    gateway_client: Any, aiohttp_server: Any, backend: Backend, **settings: Any
) -> Any:
    server = await aiohttp_server(backend.app())
    config = {
        "backends": [{"name": "b1", "url": str(server.make_url("")).rstrip("/")}],
        "plugins": {"disable": ["auth"], "config": {"team_auth": settings}},
    }
    return await gateway_client(config, plugins=[("team_auth", ollamux_team_auth)])


async def _generate(client: Any, **headers: str) -> Any:
    body = {"model": "m:latest", "prompt": "x", "stream": False}
    return await client.post("/api/generate", json=body, headers=headers)


TEAMS = {"teams": ["blue", "red", "green"], "admin_team": "blue"}


async def test_a_configured_team_is_let_in(gateway_client: Any, aiohttp_server: Any) -> None:
    backend = Backend()
    client = await _client(gateway_client, aiohttp_server, backend, **TEAMS)
    resp = await _generate(client, **{"X-Team": "red"})
    assert resp.status == 200
    assert (await resp.json())["response"] == "hi"
    assert backend.paths == ["/api/generate"]


async def test_a_request_without_a_team_is_refused_with_401(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    backend = Backend()
    client = await _client(gateway_client, aiohttp_server, backend, **TEAMS)
    resp = await _generate(client)
    assert resp.status == 401
    assert await resp.json() == {"error": "send X-Team: <your team>"}
    assert backend.paths == []


async def test_an_unknown_team_is_refused_with_401(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    backend = Backend()
    client = await _client(gateway_client, aiohttp_server, backend, **TEAMS)
    resp = await _generate(client, **{"X-Team": "purple"})
    assert resp.status == 401
    assert await resp.json() == {"error": "unknown team"}
    assert backend.paths == []


async def test_the_health_probe_needs_no_team(gateway_client: Any, aiohttp_server: Any) -> None:
    client = await _client(gateway_client, aiohttp_server, Backend(), **TEAMS)
    assert (await client.get("/ollamux/health")).status == 200


async def test_admin_endpoints_answer_only_the_admin_team(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client = await _client(gateway_client, aiohttp_server, Backend(), **TEAMS)
    assert (await client.get("/ollamux/backends", headers={"X-Team": "red"})).status == 403
    assert (await client.get("/ollamux/backends", headers={"X-Team": "blue"})).status == 200


async def test_without_an_admin_team_nobody_gets_the_admin_endpoints(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client = await _client(gateway_client, aiohttp_server, Backend(), teams=["blue"])
    assert (await client.get("/metrics", headers={"X-Team": "blue"})).status == 403


async def _finished_job(client: Any, job_id: str, team: str) -> dict[str, Any]:
    """The job's document once it has ended (polled, with a deadline)."""
    deadline = time.monotonic() + 15
    while True:
        resp = await client.get(f"/jobs/{job_id}", headers={"X-Team": team})
        doc: dict[str, Any] = await resp.json()
        if doc["status"] in ("completed", "failed", "cancelled"):
            return doc
        assert time.monotonic() < deadline, f"job still {doc['status']}"
        await asyncio.sleep(0.02)


async def test_a_job_runs_as_the_team_that_submitted_it(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    backend = Backend()
    client = await _client(gateway_client, aiohttp_server, backend, **TEAMS)
    job = {"path": "/api/generate", "body": {"model": "m:latest", "prompt": "x"}}
    resp = await client.post("/jobs", json=job, headers={"X-Team": "red"})
    assert resp.status in (200, 201, 202), await resp.text()
    job_id = (await resp.json())["id"]
    doc = await _finished_job(client, job_id, "red")
    assert (doc["status"], doc["owner"]) == ("completed", "red")
    assert backend.paths == ["/api/generate"]
    # Another team does not see it; the admin team does.
    assert (await client.get(f"/jobs/{job_id}", headers={"X-Team": "green"})).status == 404
    assert (await client.get(f"/jobs/{job_id}", headers={"X-Team": "blue"})).status == 200


async def _reload(client: Any, tmp_path: Path, teams: list[str]) -> None:
    """Reload the gateway's config from a file that lets in only ``teams``."""
    gateway = gateway_of(client)
    config = {
        "backends": [{"name": b.name, "url": b.url} for b in gateway.backends.values()],
        "plugins": {"disable": ["auth"], "config": {"team_auth": {"teams": teams}}},
    }
    path = tmp_path / "reloaded.yaml"
    path.write_text(yaml.safe_dump(test_config(config, tmp_path)))
    assert await reload_config(gateway, path)


async def test_a_reloaded_team_list_takes_effect_at_once(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    client = await _client(gateway_client, aiohttp_server, Backend(), **TEAMS)
    assert (await _generate(client, **{"X-Team": "red"})).status == 200
    await _reload(client, tmp_path, ["blue"])
    assert (await _generate(client, **{"X-Team": "red"})).status == 401
    assert (await _generate(client, **{"X-Team": "blue"})).status == 200


async def test_jobs_of_a_team_taken_off_the_list_may_no_longer_run(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    client = await _client(gateway_client, aiohttp_server, Backend(), **TEAMS)
    gateway = gateway_of(client)
    assert await gateway.hooks.resolve_principal(gateway, "red") == Principal(
        name="red", authenticated=True
    )
    await _reload(client, tmp_path, ["blue"])
    with pytest.raises(GatewayError) as refused:
        await gateway.hooks.resolve_principal(gateway, "red")
    assert refused.value.status == 403


async def test_without_teams_the_plugin_lets_every_caller_through(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    backend = Backend()
    client = await _client(gateway_client, aiohttp_server, backend)
    assert (await _generate(client)).status == 200


async def test_an_admin_team_outside_the_teams_stops_the_start(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    with pytest.raises(ollamux_team_auth.TeamAuthConfigError, match="admin_team"):
        await _client(gateway_client, aiohttp_server, Backend(), teams=["red"], admin_team="blue")


def test_the_package_installs_the_plugin_under_the_name_team_auth() -> None:
    (ep,) = [ep for ep in entry_points(group="ollamux") if ep.name == "team_auth"]
    assert ep.value == "ollamux_team_auth"
