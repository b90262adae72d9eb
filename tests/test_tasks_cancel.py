"""``DELETE /tasks/{id}`` cancels a queued or running request: upstream closed, the client
told in its dialect, the task CANCELLED with who cancelled it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ollamux.testing import GatewayClientFactory
from tests.fakes.ollama_backend import FakeOllama
from tests.tasks_util import MODEL, wait_for_state, wait_until

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}


async def _gateway(gateway_client: GatewayClientFactory, url: str, **backend: Any) -> Any:
    return await gateway_client({"backends": [{"url": url, "name": "gpu1", **backend}]})


async def test_cancelling_a_running_stream_closes_upstream_and_ends_the_stream_with_an_error(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"  # the first word, then nothing until released
    client = await _gateway(gateway_client, url)
    resp = await client.post("/api/chat", json=CHAT, headers={"X-Task-Id": "run-1"})
    assert resp.status == 200
    first = json.loads(await resp.content.readline())
    assert first["message"]["content"] == "Hello"

    cancel = await client.delete("/tasks/run-1")
    assert cancel.status == 202, await cancel.text()
    assert (await cancel.json())["cancelled_by"] == "anonymous"

    rest = (await resp.read()).decode().strip().splitlines()
    assert "cancelled by anonymous" in json.loads(rest[-1])["error"]
    await asyncio.wait_for(fake.disconnected.wait(), 5)
    doc = await wait_for_state(client, "run-1", "CANCELLED")
    assert doc["extensions"]["cancelled_by"] == "anonymous"
    assert doc["message"] == "cancelled by anonymous"


async def test_cancelling_a_queued_request_answers_its_client_409_in_its_dialect(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"
    client = await _gateway(gateway_client, url, max_concurrency=1)
    busy = await client.post("/api/chat", json=CHAT, headers={"X-Task-Id": "busy"})
    await busy.content.readline()
    body = {**CHAT, "stream": False}
    queued = asyncio.ensure_future(
        client.post("/v1/chat/completions", json=body, headers={"X-Task-Id": "queued-1"})
    )
    await wait_for_state(client, "queued-1", "PENDING")
    cancel = await client.delete("/tasks/queued-1")
    assert cancel.status == 202
    resp = await queued
    assert resp.status == 409
    error = (await resp.json())["error"]
    assert error["code"] == "cancelled" and "cancelled by anonymous" in error["message"]
    await wait_for_state(client, "queued-1", "CANCELLED")
    assert len(fake.received) == 1  # the queued one never reached the backend
    fake.release.set()
    await busy.read()


async def test_cancelling_a_finished_task_is_409_and_an_unknown_one_404(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    _fake, url = fake_ollama
    client = await _gateway(gateway_client, url)
    resp = await client.post("/api/chat", json=CHAT, headers={"X-Task-Id": "done-1"})
    await resp.read()
    await wait_for_state(client, "done-1", "SUCCESS")
    assert (await client.delete("/tasks/done-1")).status == 409
    assert (await client.delete("/tasks/nobody")).status == 404


async def test_another_keys_task_cannot_be_cancelled(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"
    client = await gateway_client(
        {
            "backends": [{"url": url}],
            "auth": {"keys": [{"name": "alice", "key": "ka"}, {"name": "bob", "key": "kb"}]},
        }
    )
    alice = {"Authorization": "Bearer ka"}
    resp = await client.post("/api/chat", json=CHAT, headers={**alice, "X-Task-Id": "mine"})
    await resp.content.readline()
    other = await client.delete("/tasks/mine", headers={"Authorization": "Bearer kb"})
    assert other.status == 404
    own = await client.delete("/tasks/mine", headers=alice)
    assert own.status == 202
    await resp.read()
    await wait_until(lambda: fake.disconnected.is_set())
