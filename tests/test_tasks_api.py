"""The task id contract and the status API: validation, ownership, listing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.tasks_util import MODEL, redis_prefix, settle, store_config, wait_for_state

__all__ = ["redis_prefix"]

BAD_IDS = ["x" * 129, "has space", "semi;colon", "star*", "slash/x", "ünicode", "a{b}"]

# Real keys for the built-in auth plugin: two clients and an admin.
AUTH_CONFIG = {
    "keys": [{"name": "alice", "key": "alice-secret"}, {"name": "bob", "key": "bob-secret"}],
    "admin_keys": ["root-secret"],
}


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(params=["sqlite", "redis"])
def make_client(
    request: Any, gateway_client: Any, fake_ollama: Any, tmp_path: Path, redis_prefix: str
) -> Any:
    _fake, url = fake_ollama

    async def make(auth: bool = False) -> Any:
        cfg = store_config(request.param, tmp_path, redis_prefix)
        cfg["backends"] = [{"url": url, "name": "gpu1"}]
        cfg["routing"] = {"retries": 0}
        if auth:
            cfg["auth"] = AUTH_CONFIG
        return await gateway_client(cfg)

    return make


async def generate(client: Any, task_id: str, key: str | None = None, **extra: Any) -> Any:
    headers = {"X-Task-Id": task_id, **(as_key(key) if key else {})}
    resp = await client.post(
        "/api/generate",
        json={"model": MODEL, "prompt": "hi", "stream": False, **extra},
        headers=headers,
    )
    await resp.read()
    return resp


# -- task ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_bad_task_id_is_refused_in_ollama_dialect(
    make_client: Any, fake_ollama: Any, bad: str
) -> None:
    fake, _url = fake_ollama
    client = await make_client()
    resp = await client.post(
        "/api/chat", json={"model": MODEL, "messages": []}, headers={"X-Task-Id": bad}
    )
    assert resp.status == 400
    body = await resp.json()
    assert "X-Task-Id" in body["error"]
    assert "X-Task-Id" not in resp.headers
    assert not [r for r in fake.received if r.path in ("/api/chat", "/v1/chat/completions")]


async def test_bad_task_id_is_refused_in_openai_dialect(make_client: Any, fake_ollama: Any) -> None:
    fake, _url = fake_ollama
    client = await make_client()
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": []},
        headers={"X-Task-Id": "ts:ollama:*"},
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "X-Task-Id"
    assert not [r for r in fake.received if r.path in ("/api/chat", "/v1/chat/completions")]


async def test_longest_allowed_task_id_is_accepted(make_client: Any) -> None:
    client = await make_client()
    task_id = "A-z0.9_:" * 16
    assert len(task_id) == 128
    resp = await generate(client, task_id)
    assert resp.status == 200
    assert resp.headers["X-Task-Id"] == task_id
    await wait_for_state(client, task_id, "SUCCESS")


async def test_status_of_unknown_task_is_404(make_client: Any) -> None:
    client = await make_client()
    resp = await client.get("/tasks/status/never-seen")
    assert resp.status == 404
    assert "not found" in (await resp.json())["error"]


async def test_status_with_malformed_id_is_400(make_client: Any) -> None:
    client = await make_client()
    resp = await client.get("/tasks/status/" + "x" * 129)
    assert resp.status == 400


# -- listing ----------------------------------------------------------------------------


async def test_list_is_newest_first_and_honours_limit(make_client: Any) -> None:
    client = await make_client()
    for i in range(5):
        await generate(client, f"order-{i}")
    await wait_for_state(client, "order-4", "SUCCESS")
    await settle(client)
    resp = await client.get("/tasks/status?limit=3")
    assert resp.status == 200
    ids = [t["task_id"] for t in (await resp.json())["tasks"]]
    assert ids == ["order-4", "order-3", "order-2"]


async def test_list_default_limit_is_50(make_client: Any) -> None:
    client = await make_client()
    await asyncio.gather(*(generate(client, f"many-{i}") for i in range(55)))
    for i in range(55):
        await wait_for_state(client, f"many-{i}", "SUCCESS")
    await settle(client)
    resp = await client.get("/tasks/status")
    assert len((await resp.json())["tasks"]) == 50


async def test_list_filters_by_state(make_client: Any) -> None:
    client = await make_client()
    await generate(client, "ok-1")
    await generate(client, "bad-1", model="missing:1b")
    await generate(client, "ok-2")
    await wait_for_state(client, "ok-2", "SUCCESS")
    await wait_for_state(client, "bad-1", "FAILED")
    await settle(client)
    failed = await (await client.get("/tasks/status?state=FAILED")).json()
    assert [t["task_id"] for t in failed["tasks"]] == ["bad-1"]
    done = await (await client.get("/tasks/status?state=success&limit=50")).json()
    assert [t["task_id"] for t in done["tasks"]] == ["ok-2", "ok-1"]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=1001", "state=DONE"])
async def test_bad_list_parameters_are_400(make_client: Any, query: str) -> None:
    client = await make_client()
    resp = await client.get(f"/tasks/status?{query}")
    assert resp.status == 400
    assert "error" in await resp.json()


# -- ownership --------------------------------------------------------------------------


async def test_task_id_of_another_key_cannot_be_reused(make_client: Any, fake_ollama: Any) -> None:
    fake, _url = fake_ollama
    client = await make_client(auth=True)
    resp = await generate(client, "mine-1", "alice-secret")
    assert resp.status == 200
    before = await wait_for_state(client, "mine-1", "SUCCESS", headers=as_key("alice-secret"))
    sent = len([r for r in fake.received if r.path == "/api/generate"])
    resp = await generate(client, "mine-1", "bob-secret", model="missing:1b")
    assert resp.status == 409
    assert "another API key" in (await resp.json())["error"]
    assert len([r for r in fake.received if r.path == "/api/generate"]) == sent
    after = await wait_for_state(client, "mine-1", "SUCCESS", headers=as_key("alice-secret"))
    assert after["event_id"] == before["event_id"]


async def test_caller_cannot_read_another_keys_task(make_client: Any) -> None:
    client = await make_client(auth=True)
    await generate(client, "secret-1", "alice-secret")
    await wait_for_state(client, "secret-1", "SUCCESS", headers=as_key("alice-secret"))
    resp = await client.get("/tasks/status/secret-1", headers=as_key("bob-secret"))
    assert resp.status == 404


async def test_list_shows_only_own_tasks_and_admin_sees_all(make_client: Any) -> None:
    client = await make_client(auth=True)
    await generate(client, "a-1", "alice-secret")
    await generate(client, "b-1", "bob-secret")
    await generate(client, "a-2", "alice-secret")
    await wait_for_state(client, "a-2", "SUCCESS", headers=as_key("alice-secret"))
    await wait_for_state(client, "b-1", "SUCCESS", headers=as_key("bob-secret"))

    await settle(client)

    async def listed(key: str) -> list[str]:
        resp = await client.get("/tasks/status", headers=as_key(key))
        return [t["task_id"] for t in (await resp.json())["tasks"]]

    assert await listed("alice-secret") == ["a-2", "a-1"]
    assert await listed("bob-secret") == ["b-1"]
    assert await listed("root-secret") == ["a-2", "b-1", "a-1"]
    resp = await client.get("/tasks/status/b-1", headers=as_key("root-secret"))
    assert resp.status == 200


async def test_status_api_needs_a_key_when_auth_is_on(make_client: Any) -> None:
    client = await make_client(auth=True)
    assert (await client.get("/tasks/status")).status == 401
    assert (await client.get("/tasks/status/x-1")).status == 401


async def test_reused_task_id_moves_to_the_top_of_the_list(make_client: Any) -> None:
    client = await make_client()
    await generate(client, "re-1")
    await generate(client, "re-2")
    await generate(client, "re-1")
    await wait_for_state(client, "re-1", "SUCCESS")
    await settle(client)
    listed = await (await client.get("/tasks/status")).json()
    assert [t["task_id"] for t in listed["tasks"]] == ["re-1", "re-2"]
