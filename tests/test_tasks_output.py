"""Kept output: an ``X-Ollamux-Keep: true`` stream survives its client and is re-read from
any chunk at ``GET /tasks/{id}/output`` (``?from=N``, or ``Last-Event-ID``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp

from ollamux.testing import GatewayClientFactory
from tests.fakes.ollama_backend import FakeOllama
from tests.tasks_util import MODEL, wait_for_state

WORDS = [f" w{i}" for i in range(10)]
KEEP = {"X-Ollamux-Keep": "true"}


def chat(stream: bool = True) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}


async def _client(gateway_client: GatewayClientFactory, fake_ollama: Any) -> Any:
    fake, url = fake_ollama
    fake.mode, fake.delay_s, fake.words = "slow", 0.005, WORDS
    return await gateway_client({"backends": [{"url": url}]})


async def test_a_kept_ndjson_stream_dropped_after_any_line_resumes_without_gaps_or_repeats(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    client = await _client(gateway_client, fake_ollama)
    whole = await client.post("/api/chat", json=chat(), headers={**KEEP, "X-Task-Id": "whole"})
    expected = (await whole.read()).splitlines(keepends=True)
    assert len(expected) == len(WORDS) + 1
    for split in range(len(expected) + 1):
        task = f"split-{split}"
        resp = await client.post("/api/chat", json=chat(), headers={**KEEP, "X-Task-Id": task})
        got = [await resp.content.readline() for _ in range(split)]
        resp.close()  # the client goes away after ``split`` lines
        again = await client.get(f"/tasks/{task}/output", params={"from": str(split)})
        assert again.status == 200
        assert again.headers["Content-Type"] == "application/x-ndjson"
        got += (await again.read()).splitlines(keepends=True)
        assert _texts(got) == _texts(expected), f"split at {split}"
        await wait_for_state(client, task, "SUCCESS")


def _texts(lines: list[bytes]) -> list[str]:
    """The generated pieces (created_at etc. are the same for every run of the fake)."""
    return [json.loads(line)["message"]["content"] for line in lines]


async def test_a_kept_sse_stream_resumes_from_last_event_id_without_gaps_or_repeats(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    client = await _client(gateway_client, fake_ollama)
    headers = {**KEEP, "X-Task-Id": "sse-whole"}
    whole = await client.post("/v1/chat/completions", json=chat(), headers=headers)
    expected = _events(await whole.read())
    assert [e[0] for e in expected] == [str(i) for i in range(len(expected))]
    for split in range(1, len(expected) + 1):
        task = f"sse-{split}"
        resp = await client.post(
            "/v1/chat/completions", json=chat(), headers={**KEEP, "X-Task-Id": task}
        )
        raw = b""
        while len(_events(raw)) < split:
            raw += await resp.content.readline()
        resp.close()
        got = _events(raw)
        again = await client.get(f"/tasks/{task}/output", headers={"Last-Event-ID": got[-1][0]})
        assert again.headers["Content-Type"] == "text/event-stream"
        got += _events(await again.read())
        assert [e[0] for e in got] == [e[0] for e in expected], f"split at {split}"
        assert [_content(e[1]) for e in got] == [_content(e[1]) for e in expected]


def _events(raw: bytes) -> list[tuple[str, str]]:
    """Complete SSE events as ``(id, data)``."""
    out = []
    for block in raw.decode().split("\n\n")[:-1]:
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields.get("id", ""), fields.get("data", "")))
    return out


def _content(data: str) -> Any:
    if data == "[DONE]":
        return data
    choices = json.loads(data).get("choices") or [{}]
    return choices[0].get("delta", {}).get("content")


async def test_output_is_kept_only_when_asked(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    client = await _client(gateway_client, fake_ollama)
    resp = await client.post("/api/chat", json=chat(), headers={"X-Task-Id": "plain"})
    await resp.read()
    await wait_for_state(client, "plain", "SUCCESS")
    assert (await client.get("/tasks/plain/output")).status == 404


async def test_a_non_streamed_kept_answer_is_one_chunk(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    client = await _client(gateway_client, fake_ollama)
    resp = await client.post("/api/chat", json=chat(False), headers={**KEEP, "X-Task-Id": "one"})
    body = await resp.json()
    again = await client.get("/tasks/one/output")
    assert await again.json() == body
    assert (await (await client.get("/tasks/one/output?from=1")).read()) == b""


async def test_a_kept_request_refused_before_its_answer_has_no_output(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    _fake, url = fake_ollama
    keys = [{"name": "narrow", "key": "kn", "models": ["other:*"]}]
    client = await gateway_client({"backends": [{"url": url}], "auth": {"keys": keys}})
    auth = {"Authorization": "Bearer kn"}
    resp = await client.post(
        "/api/chat", json=chat(), headers={**KEEP, **auth, "X-Task-Id": "refused"}
    )
    assert resp.status == 403  # model.use: refused by the gateway, never through the sink
    await wait_for_state(client, "refused", "FAILED", headers=auth)
    assert (await client.get("/tasks/refused/output", headers=auth)).status == 404


async def test_a_kept_stream_runs_to_its_end_after_its_client_left_a_real_server(
    spawn_gateway: Any, fake_ollama: tuple[FakeOllama, str]
) -> None:
    """``ollamux serve`` cancels a handler whose client went away; a kept one goes on."""
    fake, url = fake_ollama
    fake.mode = "wait"  # the first word, then nothing until released
    gw = await spawn_gateway({"backends": [{"url": url}]})
    async with aiohttp.ClientSession() as session:
        headers = {**KEEP, "X-Task-Id": "left"}
        resp = await session.post(f"{gw.url}/api/chat", json=chat(), headers=headers)
        first = await resp.content.readline()
        resp.close()  # the client leaves after the first line
        await asyncio.sleep(0)
        fake.release.set()
        async with session.get(f"{gw.url}/tasks/left/output", params={"from": "1"}) as again:
            rest = (await again.read()).splitlines(keepends=True)
    assert _texts([first, *rest]) == ["Hello", " there", ", friend", "!", ""]
    assert not fake.disconnected.is_set()


async def test_kept_output_stops_at_output_max_mb_while_the_client_gets_everything(
    gateway_client: GatewayClientFactory, fake_ollama: tuple[FakeOllama, str]
) -> None:
    _fake, url = fake_ollama
    limit_mb = 400 / (1024 * 1024)  # about three lines of the fake's stream
    client = await gateway_client(
        {"backends": [{"url": url}], "tasks": {"output_max_mb": limit_mb}}
    )
    resp = await client.post("/api/chat", json=chat(), headers={**KEEP, "X-Task-Id": "big"})
    live = (await resp.read()).splitlines(keepends=True)
    kept = (await (await client.get("/tasks/big/output")).read()).splitlines(keepends=True)
    assert len(live) == 5
    assert 0 < len(kept) < len(live) and sum(map(len, kept)) <= 400
    assert kept == live[: len(kept)]
