"""The examples of docs/plugins.md work as written: each ```python block that starts with
``# <name>.py`` is written to a file and loaded with ``plugins.load``, as a reader would."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ollamux.plugin_manager import PluginError
from ollamux.testing import gateway_of
from tests.auth_support import ALICE, BOB, bearer, keyed
from tests.fakes.fleet import start_fakes, until
from tests.jobs_support import eventually

DOC = Path(__file__).parent.parent / "docs" / "plugins.md"
_BLOCK = re.compile(r"```python\n(# (\w+)\.py\b[^\n]*\n.*?)```", re.S)
MODEL = "llama3.2:latest"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}


def examples() -> dict[str, str]:
    """``name -> code`` of every named example in docs/plugins.md."""
    return {m[2]: m[1] for m in _BLOCK.finditer(DOC.read_text())}


def example(name: str, folder: Path) -> str:
    """The example ``name`` written to ``folder/<name>.py``; returns its path."""
    path = folder / f"{name}.py"
    path.write_text(examples()[name])
    return str(path)


def test_the_replacing_a_builtin_section_has_one_example_per_builtin() -> None:
    text = DOC.read_text()
    section = text.split("\n## Replacing a built-in\n", 1)[1].split("\n## ", 1)[0]
    assert re.findall(r"^### (\w+):", section, re.M) == ["auth", "balancer", "tasks", "translate"]
    named = set(re.findall(r"^# (\w+)\.py", section, re.M))
    assert named == {"team_auth", "last_backend", "task_log", "legacy_embeddings"}
    assert named <= set(examples())


# -- auth: team_auth.py ------------------------------------------------------------------


def _teams(url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "backends": [{"name": "b1", "url": url}],
        "plugins": {
            "disable": ["auth"],
            "load": [example("team_auth", tmp_path)],
            "config": {"team_auth": {"teams": ["blue", "red"], "admin_team": "blue"}},
        },
    }


async def test_team_auth_example_refuses_a_caller_without_a_team(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(_teams(url, tmp_path))
    for headers in ({}, {"X-Team": "green"}):
        resp = await client.post("/api/chat", json=CHAT, headers=headers)
        assert resp.status == 401
        assert await resp.json() == {"error": "send X-Team: <your team>"}
    assert (await client.get("/tasks/status")).status == 401
    assert fake.received == []


async def test_team_auth_example_lets_a_team_in_and_keeps_admin_to_the_admin_team(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(_teams(url, tmp_path))
    resp = await client.post("/api/chat", json=CHAT, headers={"X-Team": "red"})
    assert resp.status == 200
    assert fake.last.path == "/api/chat"
    assert (await client.get("/ollamux/backends", headers={"X-Team": "red"})).status == 403
    assert (await client.get("/ollamux/backends", headers={"X-Team": "blue"})).status == 200


async def test_team_auth_example_runs_a_job_as_its_team(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(_teams(url, tmp_path))
    red = {"X-Team": "red"}
    job = {"path": "/api/generate", "body": {"model": MODEL, "prompt": "x"}}
    job_id = (await (await client.post("/jobs", json=job, headers=red)).json())["id"]

    async def finished() -> dict[str, Any] | None:
        doc: dict[str, Any] = await (await client.get(f"/jobs/{job_id}", headers=red)).json()
        return doc if doc["status"] in ("completed", "failed") else None

    doc = await eventually(finished)
    assert (doc["status"], doc["owner"]) == ("completed", "red")
    assert fake.last.path == "/api/generate"


# -- balancer: last_backend.py -------------------------------------------------------------


async def test_last_backend_example_sends_requests_to_the_name_that_sorts_last(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "c", "b"])
    client = await gateway_client(
        {
            "backends": [{"name": n, "url": url} for n, (_f, _s, url) in fakes.items()],
            "routing": {"health_interval_s": 60},
            "plugins": {"load": [example("last_backend", tmp_path)]},
        }
    )
    gateway = gateway_of(client)
    await until(lambda: all(b.last_probe is not None for b in gateway.backends.values()))
    for _ in range(2):
        assert (await client.post("/api/chat", json=CHAT)).status == 200
    assert [len(fakes[n][0].received) for n in "abc"] == [0, 0, 2]
    assert [b.in_flight for b in gateway.backends.values()] == [0, 0, 0]


async def test_last_backend_example_skips_a_draining_backend(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b", "c"])
    client = await gateway_client(
        {
            "backends": [{"name": n, "url": url} for n, (_f, _s, url) in fakes.items()],
            "routing": {"health_interval_s": 60},
            "plugins": {"load": [example("last_backend", tmp_path)]},
        }
    )
    assert (await client.post("/ollamux/backends/c/drain")).status == 200
    assert (await client.post("/api/chat", json=CHAT)).status == 200
    assert [len(fakes[n][0].received) for n in "abc"] == [0, 1, 0]


# -- tasks: task_log.py ----------------------------------------------------------------------


def _task_log(url: str, tmp_path: Path) -> dict[str, Any]:
    return {
        **keyed(url),
        "plugins": {"disable": ["tasks"], "load": [example("task_log", tmp_path)]},
    }


async def test_task_log_example_records_each_request_under_its_task_id(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(_task_log(url, tmp_path))
    resp = await client.post("/api/chat", json=CHAT, headers=bearer(BOB))
    assert resp.status == 200
    task_id = resp.headers["X-Task-Id"]
    task = await (await client.get(f"/task-log/{task_id}", headers=bearer(BOB))).json()
    assert task == {"owner": "bob", "path": "/api/chat", "state": "SUCCESS", "status": 200}
    # The built-in's route went with it.
    assert (await client.get("/tasks/status", headers=bearer(BOB))).status == 404


async def test_task_log_example_shows_a_task_only_to_its_owner(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(_task_log(url, tmp_path))
    resp = await client.post("/api/chat", json=CHAT, headers=bearer(BOB))
    task_id = resp.headers["X-Task-Id"]
    assert (await client.get(f"/task-log/{task_id}", headers=bearer(ALICE))).status == 404
    assert (await client.get(f"/task-log/{task_id}")).status == 401


# -- translate: legacy_embeddings.py ---------------------------------------------------------


async def test_legacy_embeddings_example_serves_api_embeddings_from_api_embed(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(
        {"backends": [{"url": url}], "plugins": {"load": [example("legacy_embeddings", tmp_path)]}}
    )
    resp = await client.post("/api/embeddings", json={"model": MODEL, "prompt": "hello"})
    assert resp.status == 200
    assert await resp.json() == {"embedding": [0.1, 0.2, 0.3]}
    assert (fake.last.path, fake.last.body) == ("/api/embed", {"model": MODEL, "input": "hello"})


async def test_legacy_embeddings_example_leaves_other_paths_alone(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(
        {"backends": [{"url": url}], "plugins": {"load": [example("legacy_embeddings", tmp_path)]}}
    )
    resp = await client.post("/api/embed", json={"model": MODEL, "input": ["a", "b"]})
    assert len((await resp.json())["embeddings"]) == 2
    assert fake.last.path == "/api/embed"


# -- routes and dispatch: ask.py ---------------------------------------------------------------


async def test_ask_example_answers_through_the_gateway_as_its_caller(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({**keyed(url), "plugins": {"load": [example("ask", tmp_path)]}})
    resp = await client.post("/ask", data="what is up?", headers=bearer(ALICE))
    assert resp.status == 200
    assert await resp.text() == "Hello there, friend!"
    assert (fake.last.path, fake.last.body["prompt"]) == ("/api/generate", "what is up?")
    assert (await client.post("/ask", data="x")).status == 401


async def test_ask_example_applies_the_callers_model_allow_list(
    gateway_client: Any, fake_ollama: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    only_qwen = [{"name": "carol", "key": "carol-key-000000", "models": ["qwen*"]}]
    client = await gateway_client(
        {**keyed(url, keys=only_qwen), "plugins": {"load": [example("ask", tmp_path)]}}
    )
    resp = await client.post("/ask", data="x", headers=bearer("carol-key-000000"))
    assert resp.status == 403
    assert fake.received == []


def test_a_route_added_without_an_action_is_refused_at_start(tmp_path: Path) -> None:
    from ollamux.app import create_app
    from ollamux.config_loader import build_config
    from ollamux.testing import test_config

    plugin = tmp_path / "hello.py"
    plugin.write_text(
        "from ollamux import hookimpl\n"
        "async def hello(request):\n"
        "    return None\n"
        "@hookimpl\n"
        "def ollamux_register_routes(gateway, app):\n"
        "    app.router.add_post('/hello', hello)\n"
    )
    config = build_config(test_config({"plugins": {"load": [str(plugin)]}}, tmp_path))
    with pytest.raises(PluginError, match=r"route POST /hello was added without an action"):
        create_app(config)
