"""Which path each translated request takes, and what the gateway answers itself."""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.exchange import ResponseHead
from ollamux.plugins import translate

MODEL = "llama3.2:latest"


@pytest.mark.parametrize(
    ("path", "body", "upstream"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}, "/api/chat"),
        ("/v1/completions", {"prompt": "x"}, "/api/generate"),
        ("/v1/embeddings", {"input": "x"}, "/api/embed"),
    ],
)
async def test_openai_paths_map_to_ollama_paths(
    gateway_client: Any, fake_ollama: Any, path: str, body: dict[str, Any], upstream: str
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post(path, json={"model": MODEL, **body})
    assert resp.status == 200
    assert (fake.last.method, fake.last.path) == ("POST", upstream)


async def test_untranslated_openai_paths_reach_ollamas_own_layer(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/v1/images/generations", json={"model": MODEL, "prompt": "x"})
    assert (await resp.json())["object"] == "ollama-openai-layer"
    assert fake.last.path == "/v1/images/generations"


async def test_responses_go_to_api_chat_unless_the_backend_answers_them_natively(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.post("/v1/responses", json={"model": MODEL, "input": "x"})
    assert (await resp.json())["object"] == "response"
    assert fake.last.path == "/api/chat"
    native = await gateway_client({"backends": [{"url": url, "native": ["responses"]}]})
    resp = await native.post("/v1/responses", json={"model": MODEL, "input": "x"})
    assert (await resp.json())["object"] == "ollama-openai-layer"
    assert fake.last.path == "/v1/responses"


async def test_model_listing_over_a_mixed_fleet_is_one_openai_list(
    gateway_client: Any, fake_ollama: Any, fake_openai: Any
) -> None:
    _o, ollama_url = fake_ollama
    _a, openai_url = fake_openai
    client = await gateway_client(
        {"backends": [{"url": ollama_url}, {"url": openai_url, "api": "openai"}]}
    )
    listed = await (await client.get("/v1/models")).json()
    assert listed["object"] == "list"
    assert sorted(m["id"] for m in listed["data"]) == [MODEL, "qwen2.5-7b"]
    tags = await (await client.get("/api/tags")).json()
    assert sorted(m["name"] for m in tags["models"]) == [MODEL, "qwen2.5-7b"]


async def test_version_is_answered_by_the_gateway_for_openai_backends(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    config = {
        "backends": [{"url": url, "api": "openai"}],
        "plugins": {"config": {"translate": {"ollama_version": "0.9.9"}}},
    }
    client = await gateway_client(config)
    assert await (await client.get("/api/version")).json() == {"version": "0.9.9"}
    assert not [r for r in fake.received if r.method != "GET"]  # probes aside


async def test_empty_generate_loads_without_calling_the_backend(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.post("/api/generate", json={"model": "qwen2.5-7b"})
    answer = await resp.json()
    assert (answer["done"], answer["done_reason"], answer["response"]) == (True, "load", "")
    assert not [r for r in fake.received if r.method != "GET"]  # probes aside


async def test_model_management_on_openai_backend_is_501(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await client.post("/api/pull", json={"model": "x"})
    assert resp.status == 501
    assert "OpenAI-compatible" in (await resp.json())["error"]


async def test_openai_backend_key_is_sent_on_translated_requests(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    fake.api_key = "sekret"
    client = await gateway_client(
        {"backends": [{"url": url, "api": "openai", "api_key": "sekret"}]}
    )
    resp = await client.post("/api/show", json={"model": "qwen2.5-7b"})
    assert resp.status == 200
    resp = await client.post(
        "/api/chat", json={"model": "qwen2.5-7b", "messages": [{"role": "user", "content": "x"}]}
    )
    assert resp.status == 200


async def test_image_urls_are_fetched_when_enabled(
    gateway_client: Any, fake_ollama: Any, aiohttp_server: Any
) -> None:
    async def image(_: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNGdata", content_type="image/png")

    app = web.Application()
    app.router.add_get("/cat.png", image)
    server = await aiohttp_server(app)
    fake, url = fake_ollama
    config = {
        "backends": [{"url": url}],
        "plugins": {"config": {"translate": {"fetch_image_urls": True}}},
    }
    client = await gateway_client(config)
    content = [{"type": "image_url", "image_url": {"url": str(server.make_url("/cat.png"))}}]
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": content}]},
    )
    assert resp.status == 200
    assert fake.last.body["messages"][0]["images"] == [base64.b64encode(b"\x89PNGdata").decode()]


async def test_image_url_without_fetching_is_a_400_in_openai_shape(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    content = [{"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/x.png"}}]
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": content}]},
    )
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "messages"
    assert not [r for r in fake.received if r.method != "GET"]  # probes aside


async def test_backend_5xx_keeps_status_in_client_dialect(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "status"
    fake.status = 500
    client = await gateway_client({"backends": [{"url": url}], "routing": {"retries": 0}})
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
    )
    assert resp.status == 500
    assert (await resp.json())["error"]["message"] == "boom"


async def test_unknown_model_id_is_a_404_in_openai_shape(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    resp = await client.get("/v1/models/org/missing:7b")
    assert resp.status == 404
    assert (await resp.json())["error"]["type"] == "not_found_error"
    assert fake.last.body == {"model": "org/missing:7b"}


async def test_loaded_models_over_a_mixed_fleet(
    gateway_client: Any, fake_ollama: Any, fake_openai: Any
) -> None:
    ollama_fake, ollama_url = fake_ollama
    ollama_fake.loaded = [MODEL]
    _a, openai_url = fake_openai
    client = await gateway_client(
        {"backends": [{"url": ollama_url}, {"url": openai_url, "api": "openai"}]}
    )
    running = await (await client.get("/api/ps")).json()
    assert sorted(m["name"] for m in running["models"]) == [MODEL, "qwen2.5-7b"]


async def test_same_dialect_is_left_alone() -> None:
    exchange: Any = SimpleNamespace(dialect=Dialect.OPENAI, path="/v1/chat/completions", state={})
    backend: Any = SimpleNamespace(api=Dialect.OPENAI)
    assert await translate.ollamux_translate_request(exchange, backend) is None
    assert translate.ollamux_transform_response(exchange, ResponseHead(200, CIMultiDict())) is None
    assert exchange.state == {}
