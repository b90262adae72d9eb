"""Per-key model allow-lists: on requests (403) and on listings (only allowed models)."""

from __future__ import annotations

from typing import Any

import aiohttp

from ollamux import hookimpl
from ollamux.exchange import Exchange
from tests.auth_support import ALICE, BOB, bearer, keyed


async def test_allowed_model_passes(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = {"model": "llama3.2:latest", "prompt": "x", "stream": False}
    resp = await client.post("/api/generate", json=body, headers=bearer(ALICE))
    assert resp.status == 200
    assert fake.last.body["model"] == "llama3.2:latest"


async def test_model_outside_allow_list_is_403_in_ollama_dialect(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = {"model": "qwen2.5:7b", "prompt": "x", "stream": False}
    resp = await client.post("/api/generate", json=body, headers=bearer(ALICE))
    assert resp.status == 403
    assert await resp.json() == {"error": "model 'qwen2.5:7b' is not allowed for this key"}
    assert fake.received == []


async def test_model_outside_allow_list_is_403_in_openai_dialect(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    body = {"model": "qwen2.5-7b", "messages": []}
    resp = await client.post("/v1/chat/completions", json=body, headers=bearer(ALICE))
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert (error["type"], error["code"], error["param"]) == (
        "permission_error",
        "model_not_allowed",
        "model",
    )


async def test_model_retrieval_by_path_follows_the_allow_list(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    resp = await client.get("/v1/models/qwen2.5-7b", headers=bearer(ALICE))
    assert resp.status == 403


class AliasPlugin:
    """Rewrites the model name the way model_rewrite's aliases do (runs before auth)."""

    @hookimpl
    def ollamux_rewrite_request(self, exchange: Exchange) -> None:
        if exchange.model == "my-alias":
            exchange.set_model("llama3.2:latest")
        elif exchange.model == "llama3.2:hidden":
            exchange.set_model("secret-model")


async def test_alias_resolving_to_an_allowed_model_passes(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url), plugins=[("alias", AliasPlugin())])
    body = {"model": "my-alias", "prompt": "x", "stream": False}
    resp = await client.post("/api/generate", json=body, headers=bearer(ALICE))
    assert resp.status == 200
    assert fake.last.body["model"] == "llama3.2:latest"


async def test_allowed_name_as_requested_passes_even_if_rewritten(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.models = ["secret-model"]
    client = await gateway_client(keyed(url), plugins=[("alias", AliasPlugin())])
    body = {"model": "llama3.2:hidden", "prompt": "x", "stream": False}
    resp = await client.post("/api/generate", json=body, headers=bearer(ALICE))
    assert resp.status == 200
    assert fake.last.body["model"] == "secret-model"


async def test_tags_listing_shows_only_allowed_models(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.models = ["llama3.2:latest", "qwen2.5:7b", "llama3.2:1b"]
    client = await gateway_client(keyed(url))
    resp = await client.get("/api/tags", headers=bearer(ALICE))
    names = [m["name"] for m in (await resp.json())["models"]]
    assert names == ["llama3.2:latest", "llama3.2:1b"]


async def test_key_without_allow_list_sees_every_model(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.models = ["llama3.2:latest", "qwen2.5:7b"]
    client = await gateway_client(keyed(url))
    resp = await client.get("/api/tags", headers=bearer(BOB))
    assert [m["name"] for m in (await resp.json())["models"]] == fake.models


async def test_ps_listing_shows_only_allowed_models(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    fake.models = fake.loaded = ["llama3.2:latest", "qwen2.5:7b"]
    client = await gateway_client(keyed(url))
    resp = await client.get("/api/ps", headers=bearer(ALICE))
    assert [m["name"] for m in (await resp.json())["models"]] == ["llama3.2:latest"]


async def test_openai_models_listing_shows_only_allowed_models(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    fake.models = ["qwen2.5-7b", "llama3.2:3b"]
    client = await gateway_client(keyed(url, api="openai"))
    resp = await client.get("/v1/models", headers=bearer(ALICE))
    assert [m["id"] for m in (await resp.json())["data"]] == ["llama3.2:3b"]


async def test_listing_with_display_suffix_is_filtered_on_the_real_name(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.models = ["llama3.2:latest", "qwen2.5:7b"]
    config = keyed(url, keys=[{"name": "alice", "key": ALICE, "models": ["llama3.2:latest"]}])
    config["models"] = {"suffix": ":proxy"}

    client = await gateway_client(config)
    resp = await client.get("/api/tags", headers=bearer(ALICE))
    assert [m["name"] for m in (await resp.json())["models"]] == ["llama3.2:latest:proxy"]


async def test_restricted_key_cannot_send_a_body_without_a_model(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    form = aiohttp.FormData({"model": "qwen2.5-7b"})
    form.add_field("file", b"RIFF....", filename="a.wav")
    resp = await client.post("/v1/audio/transcriptions", data=form, headers=bearer(ALICE))
    assert resp.status == 403
    assert fake.received == []


async def test_restricted_key_may_still_ask_model_free_gets(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    assert (await client.get("/api/version", headers=bearer(ALICE))).status == 200


async def test_untagged_name_is_allowed_by_a_glob_on_its_latest_tag(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    body = {"model": "llama3.2", "prompt": "x", "stream": False}
    resp = await client.post("/api/generate", json=body, headers=bearer(ALICE))
    assert resp.status == 200
    assert fake.last.body["model"] == "llama3.2"
