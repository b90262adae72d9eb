"""The contract: with the built-in auth disabled and another auth plugin loaded (the
X-Team example, ``plugins/ollamux-team-auth``), every route answers to that plugin alone —
proxied paths, plugin routes, pages, admin endpoints — and jobs run as their owner."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tests.jobs_support import eventually
from tests.team_auth_support import team_auth, team_config

MODEL = "llama3.2:latest"
BLUE = {"X-Team": "blue"}

# A value for each path parameter, so that every route can be called.
PARAMS = {"tail": "tags", "name": "b1", "id": "no-such-job", "task_id": "no-such-task"}
PUBLIC = {("GET", "/ollamux/health"), ("HEAD", "/ollamux/health")}
# The routes the issue names: the enumeration must reach them all.
NAMED = {
    ("GET", "/tasks/status"),
    ("GET", "/jobs"),
    ("POST", "/jobs"),
    ("GET", "/metrics"),
    ("GET", "/ollamux/backends"),
    ("GET", "/ollamux/stats"),
    ("POST", "/ollamux/backends/{name}/drain"),
    ("POST", "/api/v1/prompt"),
    ("GET", "/api/v1/prompts"),
    ("*", "/api/{tail}"),
}


def _concrete(path: str) -> str:
    return re.sub(r"\{(\w+)(?::[^}]*)?\}", lambda m: PARAMS.get(m.group(1), "x"), path)


def every_route(app: web.Application) -> list[tuple[str, str, str]]:
    """``(method, route path, concrete path)`` for each route of the app's router; a route
    for any method (``*``, the proxy) is called with GET, and ``POST /api/chat`` comes
    first (before any route, such as drain, changes the gateway's state)."""
    found = [("*", "/api/{tail}", "POST /api/chat")]
    for route in app.router.routes():
        assert route.resource is not None
        canonical = route.resource.canonical
        method = "GET" if route.method == "*" else route.method
        found.append((route.method, canonical, f"{method} {_concrete(canonical)}"))
    return found


async def _call(client: Any, call: str, headers: dict[str, str]) -> int:
    method, path = call.split(" ", 1)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.request(method, path, headers=headers, json=body)
    await resp.read()
    status: int = resp.status
    return status


async def test_every_route_but_health_answers_401_without_x_team(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(
        team_config(url, ["blue"], "blue"), plugins=[("team_auth", team_auth())]
    )
    routes = every_route(client.app)
    assert NAMED.issubset((method, path) for method, path, _call_ in routes)
    answers = {call: await _call(client, call, {}) for _method, _path, call in routes}
    assert {call: status for call, status in answers.items() if status != 401} == {
        "GET /ollamux/health": 200,
        "HEAD /ollamux/health": 200,
    }
    assert fake.received == []


async def test_every_route_answers_a_configured_team(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client(
        team_config(url, ["blue"], "blue"), plugins=[("team_auth", team_auth())]
    )
    answers = {
        call: await _call(client, call, BLUE)
        for method, path, call in every_route(client.app)
        if (method, path) not in PUBLIC
    }
    assert {call: status for call, status in answers.items() if status == 401} == {}
    assert answers["POST /api/chat"] == 200
    assert "/api/chat" in [r.path for r in fake.received]


async def test_a_job_of_a_team_runs_as_that_team_and_reaches_the_backend(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(
        team_config(url, ["blue", "red"], "red"), plugins=[("team_auth", team_auth())]
    )
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    resp = await client.post("/jobs", json=job, headers=BLUE)
    assert resp.status in (200, 201, 202), await resp.text()
    job_id = (await resp.json())["id"]

    async def finished() -> dict[str, Any] | None:
        resp = await client.get(f"/jobs/{job_id}", headers=BLUE)
        assert resp.status == 200, await resp.text()
        doc: dict[str, Any] = await resp.json()
        return doc if doc["status"] in ("completed", "failed", "cancelled") else None

    doc = await eventually(finished)
    assert (doc["status"], doc["owner"], doc["backend"]) == ("completed", "blue", "b1")
    (received,) = [r for r in fake.received if r.path == "/api/generate"]
    assert received.body["prompt"] == "x"
    # Red (the admin team here) sees it; the job is blue's, not red's.
    listing = await (await client.get("/jobs", headers={"X-Team": "red"})).json()
    assert [j["owner"] for j in listing["jobs"]] == ["blue"]
