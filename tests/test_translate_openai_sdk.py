"""The real ``openai`` SDK through ollamux to an Ollama-dialect backend (FakeOllama)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

MODEL = "llama3.2:latest"


@pytest.fixture
async def base_url(gateway_client: Any, fake_ollama: Any) -> str:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url, "api": "ollama"}]})
    return str(client.make_url("/v1"))


def _sync(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="x", max_retries=0)


def _async(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)


async def test_sync_chat_completion_reads_text_and_usage(base_url: str, fake_ollama: Any) -> None:
    def call() -> Any:
        return _sync(base_url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=50
        )

    done = await asyncio.to_thread(call)
    assert done.choices[0].message.content == "Hello there, friend!"
    assert done.choices[0].finish_reason == "stop"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (7, 4)
    fake, _ = fake_ollama
    assert fake.last.path == "/api/chat"
    assert fake.last.body["options"] == {"num_predict": 50, "temperature": 1.0, "top_p": 1.0}
    assert fake.last.body["stream"] is False


async def test_async_streaming_chat_yields_deltas_and_final_reason(base_url: str) -> None:
    client = _async(base_url)
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there, friend!"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4


async def test_tool_calls_come_back_with_ids_and_json_arguments(
    base_url: str, fake_ollama: Any
) -> None:
    fake, _ = fake_ollama
    fake.tool_calls = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    done = await _async(base_url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather?"}], tools=tools
    )
    call = done.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.id.startswith("call_")
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert done.choices[0].finish_reason == "tool_calls"
    assert fake.last.body["tools"] == tools


async def test_streamed_tool_calls_end_with_tool_calls_reason(
    base_url: str, fake_ollama: Any
) -> None:
    fake, _ = fake_ollama
    fake.tool_calls = [{"function": {"name": "f", "arguments": {"a": 1}}}]
    stream = await _async(base_url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
    )
    chunks = [c async for c in stream]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.function.name) for tc in calls] == [(0, "f")]  # type: ignore[union-attr]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_embeddings_default_base64_decode_to_the_backend_vector(
    base_url: str, fake_ollama: Any
) -> None:
    result = await _async(base_url).embeddings.create(model=MODEL, input=["a", "b"])
    assert len(result.data) == 2
    assert result.data[1].embedding == pytest.approx([0.1, 0.2, 0.3])
    fake, _ = fake_ollama
    assert fake.last.path == "/api/embed"
    assert fake.last.body == {"model": MODEL, "input": ["a", "b"]}


async def test_embeddings_as_floats(base_url: str) -> None:
    result = await _async(base_url).embeddings.create(
        model=MODEL, input="a", encoding_format="float"
    )
    assert result.data[0].embedding == pytest.approx([0.1, 0.2, 0.3])
    assert result.usage.prompt_tokens == 3


async def test_legacy_completions(base_url: str, fake_ollama: Any) -> None:
    done = await _async(base_url).completions.create(model=MODEL, prompt="Say hi", stop="!")
    assert done.choices[0].text == "Hello there, friend!"
    fake, _ = fake_ollama
    assert fake.last.path == "/api/generate"
    assert fake.last.body["options"]["stop"] == ["!"]


async def test_streamed_completions(base_url: str) -> None:
    stream = await _async(base_url).completions.create(model=MODEL, prompt="x", stream=True)
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].text for c in chunks) == "Hello there, friend!"
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_models_list_and_retrieve(base_url: str, fake_ollama: Any) -> None:
    fake, _ = fake_ollama
    fake.models = ["llama3.2:latest", "hf.co/org/model:Q4"]
    client = _async(base_url)
    listed = await client.models.list()
    assert [m.id for m in listed.data] == ["llama3.2:latest", "hf.co/org/model:Q4"]
    one = await client.models.retrieve("hf.co/org/model:Q4")
    assert one.id == "hf.co/org/model:Q4"
    assert fake.last.body == {"model": "hf.co/org/model:Q4"}


async def test_unknown_model_raises_not_found(base_url: str) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        await _async(base_url).chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )
    assert "not found" in info.value.message


async def test_error_after_stream_began_raises_in_the_sdk(base_url: str, fake_ollama: Any) -> None:
    fake, _ = fake_ollama
    fake.mode = "error_line"
    stream = await _async(base_url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
    )
    with pytest.raises(openai.APIError, match="model runner crashed"):
        async for _ in stream:
            pass


async def test_empty_messages_is_a_400_without_calling_the_backend(
    base_url: str, fake_ollama: Any
) -> None:
    fake, _ = fake_ollama
    with pytest.raises(openai.BadRequestError) as info:
        await _async(base_url).chat.completions.create(model=MODEL, messages=[])
    assert info.value.body["param"] == "messages"  # type: ignore[index]
    assert not [r for r in fake.received if r.method != "GET"]  # probes aside


async def test_sync_streaming_chat(base_url: str) -> None:
    def call() -> list[Any]:
        stream = _sync(base_url).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return list(stream)

    chunks = await asyncio.to_thread(call)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hello there, friend!"


async def test_thinking_arrives_as_reasoning(base_url: str, fake_ollama: Any) -> None:
    fake, _ = fake_ollama
    fake.thinking = "let me think"
    done = await _async(base_url).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x"}], reasoning_effort="high"
    )
    assert done.choices[0].message.reasoning == "let me think"  # type: ignore[attr-defined]
    assert fake.last.body["think"] == "high"
