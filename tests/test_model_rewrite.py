"""model_rewrite: aliases and a suffix, on requests, answers and listings, both dialects."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import openai
from multidict import CIMultiDict

from ollamux.config import Config
from ollamux.exchange import ResponseHead
from ollamux.plugins import model_rewrite
from ollamux.plugins.model_rewrite import ModelsConfig, resolve

REWRITE = {"models": {"aliases": {"gpt-4o": "llama3.2:latest"}, "suffix": ":proxy"}}


def test_resolve_strips_suffix_then_follows_alias() -> None:
    models = ModelsConfig(aliases={"gpt-4o": "llama3.2:latest"}, suffix=":proxy")
    assert resolve("gpt-4o:proxy", models) == "llama3.2:latest"
    assert resolve("llama3.2:latest:proxy", models) == "llama3.2:latest"
    assert resolve("llama3.2:latest", models) == "llama3.2:latest"
    assert resolve(":proxy", models) == ":proxy"


async def test_alias_reaches_backend_as_its_target(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], **REWRITE})
    resp = await client.post("/api/chat", json={"model": "gpt-4o", "messages": [], "stream": False})
    assert resp.status == 200
    assert fake.last.body["model"] == "llama3.2:latest"
    assert (await resp.json())["model"] == "gpt-4o"


async def test_stream_answers_name_the_model_the_client_asked_for(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "split"
    client = await gateway_client({"backends": [{"url": url}], **REWRITE})
    resp = await client.post(
        "/api/generate", json={"model": "llama3.2:latest:proxy", "prompt": "x"}
    )
    lines = [json.loads(x) for x in (await resp.text()).splitlines()]
    assert {x["model"] for x in lines} == {"llama3.2:latest:proxy"}
    assert fake.last.body["model"] == "llama3.2:latest"


async def test_ollama_listing_has_suffix_and_aliases(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], **REWRITE})
    models = (await (await client.get("/api/tags")).json())["models"]
    assert [(m["name"], m["model"]) for m in models] == [
        ("llama3.2:latest:proxy", "llama3.2:latest:proxy"),
        ("gpt-4o:proxy", "gpt-4o:proxy"),
    ]


async def test_openai_sdk_sees_alias_over_translated_backend(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], **REWRITE})
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)
    listed = await sdk.models.list()
    assert [m.id for m in listed.data] == ["llama3.2:latest:proxy", "gpt-4o:proxy"]
    done = await sdk.chat.completions.create(
        model="gpt-4o:proxy", messages=[{"role": "user", "content": "x"}]
    )
    assert done.model == "gpt-4o:proxy"
    stream = await sdk.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "x"}], stream=True
    )
    assert {c.model async for c in stream} == {"gpt-4o"}
    one = await sdk.models.retrieve("gpt-4o:proxy")
    assert one.id == "gpt-4o:proxy"


async def test_openai_passthrough_model_path_is_rewritten(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    config = {"backends": [{"url": url, "api": "openai"}], "models": {"suffix": "@gw"}}
    client = await gateway_client(config)
    resp = await client.get("/v1/models/qwen2.5-7b@gw")
    assert resp.status == 200
    assert fake.last.path == "/v1/models/qwen2.5-7b"
    assert (await resp.json())["id"] == "qwen2.5-7b@gw"


def test_nothing_configured_means_no_transform() -> None:
    config = Config(sections={"models": ModelsConfig()})
    exchange: Any = SimpleNamespace(
        gateway=SimpleNamespace(config=config), method="GET", path="/api/tags", state={}
    )
    head = ResponseHead(200, CIMultiDict())
    assert model_rewrite.ollamux_transform_response(exchange, head) is None
    exchange.model = "x"
    assert model_rewrite.ollamux_rewrite_request(exchange) is None
    assert exchange.state == {}


async def test_plugin_can_be_disabled(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    config = {"backends": [{"url": url}], **REWRITE, "plugins": {"disable": ["model_rewrite"]}}
    client = await gateway_client(config)
    resp = await client.post(
        "/api/generate", json={"model": "gpt-4o", "prompt": "x", "stream": False}
    )
    assert resp.status == 404
    assert fake.last.body["model"] == "gpt-4o"
