"""The contract: a JSON body is read by its content, whatever the Content-Type — even none.
Such a request is routed by its model, translated, and checked against a key's models like
any other; a body that is not JSON is a 400 in the endpoint's dialect."""

from __future__ import annotations

import json
from typing import Any

from aiohttp.test_utils import TestClient

from ollamux.testing import gateway_of
from tests.auth_support import ALICE, bearer, keyed
from tests.fakes.fleet import start_fakes, until
from tests.fakes.ollama_backend import FakeOllama

LLAMA = "llama3.2:latest"
QWEN = "qwen2.5:7b"


def _chat(model: str) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    return json.dumps(body).encode()


async def _post_bare(
    client: TestClient[Any, Any], path: str, body: bytes, headers: dict[str, str] | None = None
) -> Any:
    """POST ``body`` with no Content-Type header at all."""
    resp = await client.post(
        path, data=body, headers=headers or {}, skip_auto_headers=["Content-Type"]
    )
    assert "Content-Type" not in resp.request_info.headers
    return resp


async def _two_backends(
    gateway_client: Any, aiohttp_server: Any, **config: Any
) -> tuple[TestClient[Any, Any], FakeOllama, FakeOllama]:
    """Backend ``a`` serves llama3.2, ``b`` serves qwen2.5; both probed."""
    fakes = await start_fakes(aiohttp_server, ["a"], [LLAMA])
    fakes |= await start_fakes(aiohttp_server, ["b"], [QWEN])
    backends = [{"name": n, "url": url} for n, (_f, _s, url) in fakes.items()]
    client = await gateway_client(
        {**config, "backends": backends, "routing": {"health_interval_s": 60}}
    )
    gateway = gateway_of(client)
    await until(lambda: all(b.last_probe is not None for b in gateway.backends.values()))
    return client, fakes["a"][0], fakes["b"][0]


def _content_types(fake: FakeOllama) -> set[str | None]:
    return {r.headers.get("Content-Type") for r in fake.received}


async def test_an_ollama_chat_without_content_type_goes_to_the_backend_of_its_model(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, llama, qwen = await _two_backends(gateway_client, aiohttp_server)
    for model, fake in ((QWEN, qwen), (LLAMA, llama)):
        resp = await _post_bare(client, "/api/chat", _chat(model))
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["model"] == model
        (received,) = fake.received
        assert (received.path, received.body["model"]) == ("/api/chat", model)
    # The client sent no type, and none was made up on the way (not octet-stream).
    assert _content_types(llama) | _content_types(qwen) == {None}


async def test_an_openai_chat_without_content_type_is_translated_for_an_ollama_backend(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, llama, qwen = await _two_backends(gateway_client, aiohttp_server)
    resp = await _post_bare(client, "/v1/chat/completions", _chat(QWEN))
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert (doc["object"], doc["model"]) == ("chat.completion", QWEN)
    assert doc["choices"][0]["message"]["content"] == "Hello there, friend!"
    (received,) = qwen.received
    assert (received.path, received.body["model"]) == ("/api/chat", QWEN)
    assert llama.received == []
    assert _content_types(qwen) == {"application/json"}  # the translation's own body


async def test_an_openai_chat_without_content_type_reaches_an_openai_backend_without_one(
    gateway_client: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    resp = await _post_bare(client, "/v1/chat/completions", _chat("qwen2.5-7b"))
    assert resp.status == 200, await resp.text()
    (received,) = fake.received
    assert (received.path, received.body["model"]) == ("/v1/chat/completions", "qwen2.5-7b")
    # Not application/octet-stream: a FastAPI server (vLLM) would refuse the JSON then.
    assert "Content-Type" not in received.headers


async def test_a_model_restricted_key_without_content_type_gets_only_its_models(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    auth = keyed("http://unused")["auth"]
    client, llama, qwen = await _two_backends(gateway_client, aiohttp_server, auth=auth)
    allowed = await _post_bare(client, "/api/chat", _chat(LLAMA), bearer(ALICE))
    assert allowed.status == 200, await allowed.text()
    refused = await _post_bare(client, "/v1/chat/completions", _chat(QWEN), bearer(ALICE))
    assert refused.status == 403
    assert (await refused.json())["error"]["type"] == "permission_error"
    assert [r.path for r in llama.received] == ["/api/chat"]
    assert qwen.received == []


async def test_a_non_json_body_without_content_type_is_an_ollama_400_on_api_chat(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, llama, qwen = await _two_backends(gateway_client, aiohttp_server)
    resp = await _post_bare(client, "/api/chat", b"model=llama3.2&prompt=hi")
    assert resp.status == 400
    doc = await resp.json()
    assert list(doc) == ["error"]
    assert isinstance(doc["error"], str)
    assert llama.received == qwen.received == []


async def test_a_non_json_body_without_content_type_is_an_openai_400_on_chat_completions(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, llama, qwen = await _two_backends(gateway_client, aiohttp_server)
    resp = await _post_bare(client, "/v1/chat/completions", b"model=llama3.2&prompt=hi")
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert isinstance(error["message"], str)
    assert error["type"] == "invalid_request_error"
    assert {"message", "type", "param", "code"} <= set(error)
    assert llama.received == qwen.received == []
