"""Passthrough: Ollama and OpenAI requests relayed unchanged to a backend of their dialect."""

from __future__ import annotations

import json
from typing import Any


async def test_ollama_chat_stream_is_relayed_line_by_line(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/chat", json={"model": "llama3.2:latest", "messages": []})
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert "".join(x["message"]["content"] for x in lines) == "Hello there, friend!"
    assert lines[-1]["done"] is True


async def test_request_body_reaches_backend_unchanged(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    body = {"model": "llama3.2:latest", "prompt": "hi", "stream": False, "options": {"seed": 1}}
    resp = await client.post("/api/generate", json=body)
    assert resp.status == 200
    assert fake.last.body == body
    assert fake.last.path == "/api/generate"


async def test_lines_split_across_reads_arrive_whole(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    fake.mode = "split"
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/generate", json={"model": "llama3.2:latest", "prompt": "x"})
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert "".join(x["response"] for x in lines) == "Hello there, friend!"


async def test_openai_chat_is_relayed_to_openai_backend(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.post(
        "/v1/chat/completions",
        json={
            "model": "qwen2.5-7b",
            "messages": [{"role": "user", "content": "hi"}],
            "stream": True,
        },
    )
    assert resp.status == 200
    text = await resp.text()
    assert text.rstrip().endswith("data: [DONE]")


async def test_query_string_and_method_are_kept(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.delete("/api/delete?x=1", json={"model": "llama3.2:latest"})
    assert resp.status == 200
    assert (fake.last.method, fake.last.query) == ("DELETE", "x=1")


async def test_client_credentials_do_not_reach_backend(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    await client.post(
        "/api/embed",
        json={"model": "llama3.2:latest", "input": "x"},
        headers={"Authorization": "Bearer secret", "X-API-Key": "secret2"},
    )
    assert "Authorization" not in fake.last.headers
    assert "X-API-Key" not in fake.last.headers


async def test_backend_api_key_and_headers_are_sent(gateway_client: Any, fake_openai: Any) -> None:
    fake, url = fake_openai
    fake.api_key = "upstream-key"
    client = await gateway_client(
        {
            "backends": [
                {"url": url, "api": "openai", "api_key": "upstream-key", "headers": {"X-Org": "a"}}
            ]
        }
    )
    resp = await client.post("/v1/embeddings", json={"model": "qwen2.5-7b", "input": "x"})
    assert resp.status == 200
    assert fake.last.headers["Authorization"] == "Bearer upstream-key"
    assert fake.last.headers["X-Org"] == "a"


async def test_tags_lists_backend_models(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    fake.models = ["a:latest", "b:latest"]
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.get("/api/tags")
    assert [m["name"] for m in (await resp.json())["models"]] == ["a:latest", "b:latest"]


async def test_root_answers_like_ollama(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.get("/")
    assert await resp.text() == "Ollama is running"
    head = await client.head("/")
    assert head.status == 200


async def test_pull_progress_is_streamed(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/pull", json={"model": "x"})
    statuses = [json.loads(x)["status"] for x in (await resp.text()).splitlines()]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success"


async def test_a_text_body_to_a_path_ollamux_does_not_know_reaches_the_backend_as_it_is(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post(
        "/v1/audio/speech-notes", data=b"not json at all", headers={"Content-Type": "text/plain"}
    )
    assert resp.status != 400  # not refused by the gateway (the fake cannot echo bytes)
    assert fake.received[0].body == b"not json at all"


async def test_a_text_body_to_a_json_endpoint_is_a_400_in_its_dialect(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post(
        "/v1/chat/completions", data=b"not json", headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["type"] == "invalid_request_error"
    assert fake.received == []
