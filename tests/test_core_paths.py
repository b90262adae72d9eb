"""Every Ollama native path and the OpenAI paths pass through; streams are not buffered."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

MODEL = "llama3.2:latest"


async def test_head_root_answers_like_ollama(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.head("/")
    assert resp.status == 200
    assert await resp.read() == b""


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        ("GET", "/api/version", None, {"version": "0.12.0"}),
        (
            "POST",
            "/api/embeddings",
            {"model": MODEL, "prompt": "x"},
            {"embedding": [0.1, 0.2, 0.3]},
        ),
        ("GET", "/api/ps", None, {"models": []}),
    ],
)
async def test_json_paths_are_relayed(
    gateway_client: Any,
    fake_ollama: Any,
    method: str,
    path: str,
    body: Any,
    expected: dict[str, Any],
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.request(method, path, json=body)
    assert resp.status == 200
    assert await resp.json() == expected


async def test_show_passes_backend_404_for_unknown_model(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    ok = await client.post("/api/show", json={"model": MODEL})
    assert ok.status == 200
    assert (await ok.json())["capabilities"] == ["completion", "tools"]
    missing = await client.post("/api/show", json={"model": "nope"})
    assert missing.status == 404
    assert await missing.json() == {"error": "model 'nope' not found"}


@pytest.mark.parametrize("path", ["/api/create", "/api/push"])
async def test_progress_streams_are_relayed(
    gateway_client: Any, fake_ollama: Any, path: str
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post(path, json={"model": MODEL})
    assert resp.status == 200
    statuses = [json.loads(x)["status"] for x in (await resp.text()).splitlines()]
    assert statuses[0] == "pulling manifest"
    assert statuses[-1] == "success"
    assert fake.last.path == path


async def test_copy_is_relayed(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/copy", json={"source": MODEL, "destination": "mine"})
    assert resp.status == 200
    assert fake.last.body == {"source": MODEL, "destination": "mine"}


async def test_untranslated_openai_paths_reach_the_backends_v1_layer(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    # /v1/responses is translated to /api/chat unless the backend answers it natively
    client = await gateway_client({"backends": [{"url": url, "native": ["responses"]}]})
    resp = await client.post("/v1/responses?x=1", json={"model": MODEL, "input": "hi"})
    assert resp.status == 200
    assert await resp.json() == {
        "object": "ollama-openai-layer",
        "path": "/v1/responses",
        "body": {"model": MODEL, "input": "hi"},
    }


async def test_openai_model_listing_is_relayed(gateway_client: Any, fake_openai: Any) -> None:
    _fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.get("/v1/models")
    assert resp.status == 200
    assert [m["id"] for m in (await resp.json())["data"]] == ["qwen2.5-7b"]


async def test_hop_by_hop_headers_are_dropped_and_host_rewritten(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    await client.post(
        "/api/embed",
        json={"model": MODEL, "input": "x"},
        headers={
            "Host": "gateway.example",
            "Proxy-Authorization": "Basic abc",
            "TE": "trailers",
            "X-Custom": "kept",
        },
    )
    headers = fake.last.headers
    assert headers["Host"] == url.removeprefix("http://")
    assert "Proxy-Authorization" not in headers
    assert "TE" not in headers
    assert headers["X-Custom"] == "kept"
    assert headers["X-Forwarded-For"] == "127.0.0.1"


async def test_stream_chunks_reach_the_client_before_the_backend_finishes(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"  # sends the first line, then waits for `release`
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/api/generate", json={"model": MODEL, "prompt": "x"})
    first = await asyncio.wait_for(resp.content.readline(), 10)
    assert json.loads(first)["response"] == "Hello"
    fake.release.set()
    rest = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert rest[-1]["done"] is True


async def test_a_whole_answer_goes_out_with_its_length_not_chunked(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    resp = await client.post("/api/chat", json=chat)
    body = await resp.read()
    assert resp.headers["Content-Length"] == str(len(body))
    assert "Transfer-Encoding" not in resp.headers
    assert json.loads(body)["done"] is True
