"""The real client libraries authenticate the way their users would configure them."""

from __future__ import annotations

from typing import Any

import ollama
import openai
import pytest

from tests.auth_support import ALICE, BOB, bearer, keyed


async def test_openai_sdk_with_api_key_is_accepted(gateway_client: Any, fake_openai: Any) -> None:
    _fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=BOB, max_retries=0)
    reply = await sdk.chat.completions.create(
        model="qwen2.5-7b", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content


async def test_openai_sdk_with_wrong_key_raises_authentication_error(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        await sdk.models.list()
    assert info.value.status_code == 401


async def test_openai_sdk_sees_a_forbidden_model_as_permission_denied(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client(keyed(url, api="openai"))
    sdk = openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key=ALICE, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        await sdk.chat.completions.create(
            model="qwen2.5-7b", messages=[{"role": "user", "content": "hi"}]
        )


async def test_ollama_sdk_with_authorization_header_is_accepted(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    sdk = ollama.AsyncClient(host=str(client.make_url("")), headers=bearer(ALICE))
    reply = await sdk.chat(model="llama3.2:latest", messages=[{"role": "user", "content": "hi"}])
    assert reply.message.content == "Hello there, friend!"


async def test_ollama_sdk_stream_with_key_is_accepted(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    sdk = ollama.AsyncClient(host=str(client.make_url("")), headers=bearer(ALICE))
    parts = [
        p.message.content
        async for p in await sdk.chat(
            model="llama3.2:latest", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    ]
    assert "".join(parts) == "Hello there, friend!"


async def test_ollama_sdk_without_key_gets_401(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(keyed(url))
    sdk = ollama.AsyncClient(host=str(client.make_url("")))
    with pytest.raises(ollama.ResponseError) as info:
        await sdk.list()
    assert info.value.status_code == 401
    assert info.value.error == "an API key is required"
