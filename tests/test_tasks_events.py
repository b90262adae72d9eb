"""``GET /tasks/{id}/events``: the status document as server-sent events, as it changes, until
a final state; progress (queue position, tokens, the backend's figures) in ``extensions``."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ollamux.testing import GatewayClientFactory
from tests.fakes.ollama_backend import FakeOllama
from tests.tasks_util import MODEL, wait_for_state

WORDS = [f" w{i}" for i in range(8)]


def chat(stream: bool = True) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


async def read_events(resp: Any) -> list[dict[str, Any]]:
    """The ``data`` of every ``status`` event until the stream ends."""
    docs: list[dict[str, Any]] = []
    event = ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "status":
            docs.append(json.loads(line.split(":", 1)[1]))
    return docs


async def test_a_queued_requests_events_show_its_position_falling_then_tokens_rising(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, url = fake_ollama
    fake.mode, fake.delay_s, fake.words = "slow", 0.04, WORDS
    client = await gateway_client({"backends": [{"url": url, "max_concurrency": 1}]})
    ahead = [
        asyncio.ensure_future(client.post("/api/chat", json=chat(), headers={"X-Task-Id": t}))
        for t in ("first", "second")
    ]
    await wait_for_state(client, "second", "PENDING")
    mine = asyncio.ensure_future(
        client.post("/api/chat", json=chat(), headers={"X-Task-Id": "third"})
    )
    await wait_for_state(client, "third", "PENDING")
    events = await client.get("/tasks/third/events")
    assert events.status == 200
    assert events.headers["Content-Type"].startswith("text/event-stream")
    docs = await read_events(events)

    # (The first document may come before the request joined the queue: no position yet.)
    positions = [
        d["extensions"]["queue_position"] for d in docs if "queue_position" in d["extensions"]
    ]
    assert positions[0] == 2 and positions[-1] == 1
    assert positions == sorted(positions, reverse=True)
    tokens = [d["extensions"]["tokens"] for d in docs if d["stage"] == "streaming"]
    assert len(set(tokens)) >= 3 and tokens == sorted(tokens)
    last = docs[-1]
    assert last["state"] == "SUCCESS"
    ext = last["extensions"]
    assert ext["eval_count"] == len(WORDS) and ext["tokens"] == len(WORDS)
    assert ext["prompt_eval_count"] == 7 and ext["load_ms"] == 1 and ext["eval_ms"] == 3
    assert ext["wait_ms"] > 0
    for resp in [*await asyncio.gather(*ahead), await mine]:
        await resp.read()


async def test_watching_a_finished_task_gives_its_final_document_and_ends(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/chat", json=chat(False), headers={"X-Task-Id": "over"})
    await resp.read()
    await wait_for_state(client, "over", "SUCCESS")
    docs = await read_events(await client.get("/tasks/over/events"))
    assert [d["state"] for d in docs] == ["SUCCESS"]


async def test_watching_an_unknown_task_is_404(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    assert (await client.get("/tasks/nobody/events")).status == 404


async def test_a_detached_requests_events_follow_its_job_to_the_end(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    fake, url = fake_ollama
    fake.mode, fake.delay_s, fake.words = "slow", 0.04, WORDS
    client = await gateway_client({"backends": [{"url": url}]})
    headers = {"Prefer": "respond-async", "X-Task-Id": "detached-w"}
    assert (await client.post("/api/chat", json=chat(), headers=headers)).status == 202
    docs = await read_events(await client.get("/tasks/detached-w/events"))
    assert docs[-1]["state"] == "SUCCESS"
    assert docs[-1]["extensions"]["eval_count"] == len(WORDS)
    assert "RUNNING" in [d["state"] for d in docs]
