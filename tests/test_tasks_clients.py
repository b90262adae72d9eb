"""Task ids through the real client libraries: callers set ``X-Task-Id`` and read it back."""

from __future__ import annotations

from typing import Any

import ollama
import openai

from tests.tasks_util import MODEL, wait_for_state


async def test_openai_sdk_stream_returns_task_id_and_status_ends_success(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)
    raw = await sdk.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers={"X-Task-Id": "sdk-openai-1"},
    )
    assert raw.headers["x-task-id"] == "sdk-openai-1"
    text = "".join([c.choices[0].delta.content or "" async for c in raw.parse() if c.choices])
    assert text == "Hello there, friend!"
    doc = await wait_for_state(client, "sdk-openai-1", "SUCCESS")
    assert doc["extensions"]["path"] == "/v1/chat/completions"
    await sdk.close()


async def test_ollama_sdk_request_with_task_id_is_tracked(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    sdk = ollama.AsyncClient(host=str(client.make_url("")), headers={"X-Task-Id": "sdk-ollama-1"})
    parts = [p async for p in await sdk.chat(model=MODEL, messages=[], stream=True)]
    assert parts[-1].done
    doc = await wait_for_state(client, "sdk-ollama-1", "SUCCESS")
    assert (doc["extensions"]["path"], doc["extensions"]["stream"]) == ("/api/chat", True)
