"""The Messages and Responses fronts take part in everything the gateway does for the other
paths: keys (``x-api-key``) and model allow-lists, routing by model, jobs, metrics, model
rewriting, and cancelling the backend when the client goes away."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import openai
import pytest

from ollamux.exchange import TaskState
from tests.auth_support import ALICE, BOB, keyed
from tests.fakes.finished import Finished
from tests.jobs_support import wait_status
from tests.test_ops_metrics import sample, scrape

MODEL = "llama3.2:latest"
DEADLINE_S = 10
ASK = {"model": MODEL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


def _anthropic(client: Any, key: str = "x") -> anthropic.AsyncAnthropic:
    base = str(client.make_url("")).rstrip("/")
    return anthropic.AsyncAnthropic(base_url=base, api_key=key, max_retries=0)


# --- keys and allow-lists -------------------------------------------------------------------


async def test_the_anthropic_sdk_authenticates_with_x_api_key(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    done = await _anthropic(client, BOB).messages.create(**ASK)  # type: ignore[arg-type]
    assert done.content[0].text == "Hello there, friend!"  # type: ignore[union-attr]
    assert "x-api-key" not in {k.lower() for k in fake.last.headers}


async def test_a_wrong_key_is_an_anthropic_authentication_error(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    with pytest.raises(anthropic.AuthenticationError) as info:
        await _anthropic(client, "nope").messages.create(**ASK)  # type: ignore[arg-type]
    assert info.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]


async def test_a_model_outside_the_keys_allow_list_is_permission_denied(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    with pytest.raises(anthropic.PermissionDeniedError) as info:
        await _anthropic(client, ALICE).messages.create(**{**ASK, "model": "qwen2.5-7b"})  # type: ignore[arg-type]
    assert info.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=ALICE, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        await sdk.responses.create(model="qwen2.5-7b", input="hi")


# --- routing ----------------------------------------------------------------------------------


async def test_each_request_goes_to_the_backend_that_serves_its_model(
    gateway_client: Any, fake_ollama: Any, fake_openai: Any
) -> None:
    ollama_fake, ollama_url = fake_ollama
    openai_fake, openai_url = fake_openai
    client = await gateway_client(
        {
            "backends": [
                {"url": ollama_url, "models": [MODEL]},
                {"url": openai_url, "api": "openai", "models": ["qwen2.5-7b"]},
            ]
        }
    )
    for model in (MODEL, "qwen2.5-7b", MODEL):
        resp = await client.post("/v1/messages", json={**ASK, "model": model})
        assert resp.status == 200, await resp.text()
        resp = await client.post("/v1/responses", json={"model": model, "input": "hi"})
        assert resp.status == 200, await resp.text()
    assert [r.path for r in ollama_fake.received if r.method == "POST"] == ["/api/chat"] * 4
    assert [r.path for r in openai_fake.received if r.method == "POST"] == [
        "/v1/chat/completions"
    ] * 2


# --- jobs ---------------------------------------------------------------------------------------


async def test_jobs_run_messages_and_responses_requests(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], "jobs": {}})
    messages = {"path": "/v1/messages", "body": ASK}
    job = await (await client.post("/jobs", json=messages)).json()
    await wait_status(client, job["id"], "completed")
    result = await (await client.get(f"/jobs/{job['id']}/result")).json()
    assert (result["type"], result["content"][0]["text"]) == ("message", "Hello there, friend!")

    responses = {"path": "/v1/responses", "body": {"model": MODEL, "input": "hi"}}
    job = await (await client.post("/jobs", json=responses)).json()
    await wait_status(client, job["id"], "completed")
    result = await (await client.get(f"/jobs/{job['id']}/result")).json()
    assert (result["object"], result["status"]) == ("response", "completed")

    refused = await client.post("/jobs", json={"path": "/v1/responses", "body": {"model": MODEL}})
    assert refused.status == 400
    assert "body.input is required" in (await refused.json())["error"]


# --- metrics -------------------------------------------------------------------------------------


async def test_requests_and_tokens_are_counted_under_the_fronts_paths(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client({"backends": [{"name": "vllm", "url": url, "api": "openai"}]})
    model = "qwen2.5-7b"
    await (await client.post("/v1/messages", json={**ASK, "model": model, "stream": True})).read()
    await (await client.post("/v1/responses", json={"model": model, "input": "x"})).read()
    after = await scrape(client)
    for path in ("/v1/messages", "/v1/responses"):
        labels = {"endpoint": path, "status": "200", "model": model, "backend": "vllm"}
        assert sample(after, "ollamux_requests_total", **labels) == 1
    labels = {"model": model, "backend": "vllm"}
    assert sample(after, "ollamux_tokens_total", direction="in", **labels) == 10  # 5 each
    assert sample(after, "ollamux_tokens_total", direction="out", **labels) == 6  # 3 words each


# --- model rewriting -----------------------------------------------------------------------------


async def test_an_alias_is_sent_resolved_and_shown_as_asked(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(
        {"backends": [{"url": url}], "models": {"aliases": {"claude-local": MODEL}}}
    )
    sdk = _anthropic(client)
    done = await sdk.messages.create(**{**ASK, "model": "claude-local"})  # type: ignore[arg-type]
    assert done.model == "claude-local"
    assert fake.last.body["model"] == MODEL
    async with sdk.messages.stream(**{**ASK, "model": "claude-local"}) as stream:  # type: ignore[arg-type]
        final = await stream.get_final_message()
    assert final.model == "claude-local"
    oai = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)
    async with oai.responses.stream(model="claude-local", input="hi") as rstream:
        response = await rstream.get_final_response()
    assert response.model == "claude-local"


# --- client disconnect ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages", {**ASK, "stream": True}),
        ("/v1/responses", {"model": MODEL, "input": "hi", "stream": True}),
    ],
)
async def test_a_client_leaving_mid_stream_cancels_the_backend_request(
    gateway_client: Any, fake_ollama: Any, path: str, body: dict[str, Any]
) -> None:
    fake, url = fake_ollama
    fake.mode = "hang_body"
    finished = Finished()
    client = await gateway_client({"backends": [{"url": url}]}, plugins=[("finished", finished)])
    resp = await client.post(path, json=body)
    assert resp.status == 200
    first = await asyncio.wait_for(resp.content.readline(), DEADLINE_S)
    assert first.startswith(b"event: ")
    await asyncio.wait_for(fake.started.wait(), DEADLINE_S)
    resp.close()
    await asyncio.wait_for(fake.disconnected.wait(), DEADLINE_S)
    await asyncio.wait_for(finished.event.wait(), DEADLINE_S)
    (exchange,) = finished.exchanges
    assert exchange.outcome is TaskState.CANCELLED


async def test_a_client_leaving_before_the_first_byte_cancels_an_openai_backend_request(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    fake.mode = "hang"
    finished = Finished()
    client = await gateway_client(
        {"backends": [{"url": url, "api": "openai"}]}, plugins=[("finished", finished)]
    )
    request = asyncio.ensure_future(
        client.post("/v1/messages", json={**ASK, "model": "qwen2.5-7b", "stream": True})
    )
    await asyncio.wait_for(fake.started.wait(), DEADLINE_S)
    request.cancel()
    await asyncio.wait_for(fake.disconnected.wait(), DEADLINE_S)
    await asyncio.wait_for(finished.event.wait(), DEADLINE_S)
    (exchange,) = finished.exchanges
    assert exchange.outcome is TaskState.CANCELLED
