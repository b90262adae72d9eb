"""``Prefer: respond-async`` detaches any inference request: 202, a job under the task id,
the result later in the request's own dialect and shape."""

from __future__ import annotations

import json
from typing import Any

from ollamux.testing import GatewayClientFactory
from tests.fakes.ollama_backend import FakeOllama
from tests.jobs_support import eventually, wait_status
from tests.tasks_util import MODEL, wait_for_state

ASYNC = {"Prefer": "respond-async"}
WORDS = [f" w{i}" for i in range(6)]


def chat(stream: bool = True) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


async def _client(gateway_client: GatewayClientFactory, fake_ollama: Any, workers: int = 2) -> Any:
    fake, url = fake_ollama
    fake.words = WORDS
    return await gateway_client({"backends": [{"url": url}], "jobs": {"workers": workers}})


async def test_a_detached_request_is_accepted_with_its_task_id_as_job_id(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    client = await _client(gateway_client, fake_ollama)
    resp = await client.post("/api/chat", json=chat(), headers={**ASYNC, "X-Task-Id": "later-1"})
    assert resp.status == 202
    assert await resp.json() == {"id": "later-1", "status": "queued"}
    assert resp.headers["Location"] == "/jobs/later-1"
    assert resp.headers["X-Task-Id"] == "later-1"
    await wait_status(client, "later-1", "completed")
    await wait_for_state(client, "later-1", "SUCCESS")


async def test_a_detached_ollama_stream_is_read_back_whole_as_ndjson(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    client = await _client(gateway_client, fake_ollama)
    job_id = (await (await client.post("/api/chat", json=chat(), headers=ASYNC)).json())["id"]
    await wait_status(client, job_id, "completed")
    result = await client.get(f"/jobs/{job_id}/result")
    assert result.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in (await result.read()).splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "".join(WORDS)
    assert lines[-1]["done"] is True
    assert fake_ollama[0].last.body["stream"] is True


async def test_a_detached_openai_request_without_stream_gives_its_json_answer(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    client = await _client(gateway_client, fake_ollama)
    resp = await client.post("/v1/chat/completions", json=chat(False), headers=ASYNC)
    job_id = (await resp.json())["id"]
    await wait_status(client, job_id, "completed")
    answer = await (await client.get(f"/jobs/{job_id}/result")).json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "".join(WORDS)


async def test_a_detached_streams_output_is_read_from_an_offset_while_it_runs(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, _url = fake_ollama
    client = await _client(gateway_client, fake_ollama)
    fake.mode = "wait"  # the first word, then nothing until released
    job_id = (await (await client.post("/api/chat", json=chat(), headers=ASYNC)).json())["id"]
    await eventually(lambda: _has_output(client, job_id))
    resp = await client.get(f"/tasks/{job_id}/output", params={"from": "1"})
    fake.release.set()
    lines = [json.loads(line) for line in (await resp.read()).splitlines()]
    assert "".join(line["message"]["content"] for line in lines) == "".join(WORDS[1:])


async def _has_output(client: Any, task_id: str) -> bool:
    resp = await client.get(f"/tasks/{task_id}/output")
    if resp.status != 200:
        return False
    line = await resp.content.readline()
    resp.close()
    return bool(line)


async def test_cancelling_a_queued_detached_request_cancels_its_job_and_task(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, _url = fake_ollama
    client = await _client(gateway_client, fake_ollama, workers=1)
    fake.mode = "wait"
    await client.post("/api/chat", json=chat(), headers={**ASYNC, "X-Task-Id": "ahead"})
    await wait_status(client, "ahead", "processing")
    await client.post("/api/chat", json=chat(), headers={**ASYNC, "X-Task-Id": "behind"})
    cancel = await client.delete("/tasks/behind")
    assert cancel.status == 202, await cancel.text()
    await wait_status(client, "behind", "cancelled")
    doc = await wait_for_state(client, "behind", "CANCELLED")
    assert doc["extensions"]["cancelled_by"] == "anonymous"
    running = await client.delete("/tasks/ahead")
    assert running.status == 202
    await wait_status(client, "ahead", "cancelled")
    await wait_for_state(client, "ahead", "CANCELLED")


async def test_post_jobs_cancel_cancels_a_job(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, _url = fake_ollama
    client = await _client(gateway_client, fake_ollama)
    fake.mode = "wait"
    job_id = (await (await client.post("/api/chat", json=chat(), headers=ASYNC)).json())["id"]
    await wait_status(client, job_id, "processing")
    resp = await client.post(f"/jobs/{job_id}/cancel")
    assert resp.status == 200
    assert (await resp.json())["status"] == "cancelled"


async def test_delete_tasks_cancels_a_queued_job_submitted_with_post_jobs(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, _url = fake_ollama
    client = await _client(gateway_client, fake_ollama, workers=1)
    fake.mode = "wait"
    await client.post("/api/chat", json=chat(), headers={**ASYNC, "X-Task-Id": "busy"})
    await wait_status(client, "busy", "processing")
    body = {"path": "/api/chat", "body": chat(False)}
    job_id = (await (await client.post("/jobs", json=body)).json())["id"]
    assert (await client.get(f"/tasks/status/{job_id}")).status == 404  # no task yet
    cancel = await client.delete(f"/tasks/{job_id}")
    assert cancel.status == 202, await cancel.text()
    await wait_status(client, job_id, "cancelled")
    fake.release.set()


async def test_another_keys_queued_job_cannot_be_cancelled_as_a_task(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, url = fake_ollama
    keys = [{"name": "alice", "key": "ka"}, {"name": "bob", "key": "kb"}]
    client = await gateway_client(
        {"backends": [{"url": url}], "jobs": {"workers": 1}, "auth": {"keys": keys}}
    )
    alice, bob = {"Authorization": "Bearer ka"}, {"Authorization": "Bearer kb"}
    fake.mode = "wait"
    await client.post("/api/chat", json=chat(), headers={**ASYNC, **alice, "X-Task-Id": "a1"})
    await eventually(lambda: _status_is(client, "a1", "processing", alice))
    body = {"path": "/api/chat", "body": chat(False)}
    job_id = (await (await client.post("/jobs", json=body, headers=alice)).json())["id"]
    assert (await client.delete(f"/tasks/{job_id}", headers=bob)).status == 404
    assert (await client.delete(f"/tasks/{job_id}", headers=alice)).status == 202
    fake.release.set()


async def _status_is(client: Any, job_id: str, status: str, headers: dict[str, str]) -> bool:
    resp = await client.get(f"/jobs/{job_id}", headers=headers)
    return resp.status == 200 and (await resp.json())["status"] == status
