"""Auth with the real jobs plugin: a job runs as the key that submitted it."""

from __future__ import annotations

from typing import Any

from tests.auth_support import ALICE, BOB, bearer, keyed
from tests.jobs_support import eventually


async def _job_status(client: Any, job_id: str, key: str) -> Any:
    resp = await client.get(f"/jobs/{job_id}", headers=bearer(key))
    doc = await resp.json()
    return doc if doc.get("status") in ("completed", "failed") else None


async def test_job_of_a_key_runs_as_that_key_and_completes(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    job = {"path": "/api/generate", "body": {"model": "llama3.2:latest", "prompt": "x"}}
    resp = await client.post("/jobs", json=job, headers=bearer(ALICE))
    assert resp.status in (200, 201, 202)
    job_id = (await resp.json())["id"]
    doc = await eventually(lambda: _job_status(client, job_id, ALICE))
    assert doc["status"] == "completed"
    assert "X-Ollamux-Internal" not in fake.last.headers
    assert (await client.get(f"/jobs/{job_id}", headers=bearer(BOB))).status == 404


async def test_job_for_a_model_outside_the_keys_allow_list_is_refused_at_submit(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    job = {"path": "/api/generate", "body": {"model": "qwen2.5:7b", "prompt": "x"}}
    resp = await client.post("/jobs", json=job, headers=bearer(ALICE))
    assert resp.status == 403
    assert "not allowed for this key" in (await resp.json())["error"]
    assert (await client.get("/jobs", headers=bearer(ALICE))).status == 200
    assert (await (await client.get("/jobs", headers=bearer(ALICE))).json())["jobs"] == []
    assert fake.received == []


async def test_submitting_a_job_needs_a_key(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    job = {"path": "/api/generate", "body": {"model": "llama3.2:latest", "prompt": "x"}}
    resp = await client.post("/jobs", json=job)
    assert resp.status == 401
    assert await resp.json() == {"error": "an API key is required"}


async def test_jobs_and_live_requests_share_a_keys_concurrency_limit(
    gateway_client: Any, fake_jobs: Any
) -> None:
    fake, url = fake_jobs
    keys = [{"name": "carol", "key": "carol-key-0000", "max_concurrency": 1}]
    config = keyed(url, keys=keys)
    config["backends"][0]["max_concurrency"] = 8
    config["jobs"] = {"workers": 4}
    client = await gateway_client(config)
    carol = bearer("carol-key-0000")
    ids = []
    for i in range(3):
        job = {"path": "/api/generate", "body": {"model": "llama3.2:latest", "prompt": f"block{i}"}}
        ids.append((await (await client.post("/jobs", json=job, headers=carol)).json())["id"])
    await eventually(lambda: _true(fake.blocked == 1))
    # One job holds carol's only slot: the other jobs wait, a live request is refused.
    live = {"model": "llama3.2:latest", "prompt": "now", "stream": False}
    assert (await client.post("/api/generate", json=live, headers=carol)).status == 429
    assert fake.blocked == 1
    fake.unblock.set()
    for job_id in ids:
        doc = await eventually(lambda job_id=job_id: _job_status(client, job_id, "carol-key-0000"))
        assert doc["status"] == "completed"
        assert doc["attempts"] == 1  # waiting for the slot spent no attempt
    assert sorted(fake.order) == ["block0", "block1", "block2"]


async def _true(value: bool) -> bool:
    return value
