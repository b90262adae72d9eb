"""The real ``ollama`` SDK through ollamux to an OpenAI-dialect backend (FakeOpenAI)."""

from __future__ import annotations

import asyncio
from typing import Any

import ollama
import pytest

MODEL = "qwen2.5-7b"


@pytest.fixture
async def host(gateway_client: Any, fake_openai: Any) -> str:
    _fake, url = fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": "openai"}]})
    return str(client.make_url("")).rstrip("/")


async def test_chat_streams_text_then_one_final_line(host: str, fake_openai: Any) -> None:
    parts = [
        p
        async for p in await ollama.AsyncClient(host=host).chat(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
        )
    ]
    assert "".join(p.message.content or "" for p in parts) == "Hello there!"
    assert [p.done for p in parts].count(True) == 1 and parts[-1].done
    assert parts[-1].done_reason == "stop"
    assert (parts[-1].prompt_eval_count, parts[-1].eval_count) == (5, 3)
    fake, _ = fake_openai
    assert fake.last.path == "/v1/chat/completions"
    assert fake.last.body["stream"] is True
    assert fake.last.body["stream_options"] == {"include_usage": True}


async def test_sync_chat_without_stream_is_one_object(host: str, fake_openai: Any) -> None:
    def call() -> Any:
        return ollama.Client(host=host).chat(
            model=MODEL,
            messages=[{"role": "user", "content": "hi"}],
            options={"num_predict": 20, "temperature": 0.5, "top_k": 3},
        )

    done = await asyncio.to_thread(call)
    assert done.message.content == "Hello there!"
    assert done.done and done.eval_count == 3
    fake, _ = fake_openai
    assert fake.last.body["max_tokens"] == 20
    assert fake.last.body["temperature"] == 0.5
    assert "top_k" not in fake.last.body


async def test_streamed_tool_call_fragments_arrive_whole(host: str, fake_openai: Any) -> None:
    fake, _ = fake_openai
    fake.tool_calls = [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    ]
    parts = [
        p
        async for p in await ollama.AsyncClient(host=host).chat(
            model=MODEL, messages=[{"role": "user", "content": "weather?"}], stream=True
        )
    ]
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert len(calls) == 1
    assert calls[0].function.name == "get_weather"
    assert calls[0].function.arguments == {"city": "Paris"}


async def test_generate_streams_responses(host: str, fake_openai: Any) -> None:
    parts = [
        p
        async for p in await ollama.AsyncClient(host=host).generate(
            model=MODEL, prompt="hi", system="be brief", stream=True
        )
    ]
    assert "".join(p.response for p in parts) == "Hello there!"
    assert parts[-1].done
    fake, _ = fake_openai
    assert fake.last.body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]


async def test_raw_generate_uses_completions(host: str, fake_openai: Any) -> None:
    done = await ollama.AsyncClient(host=host).generate(
        model=MODEL, prompt="[INST]hi[/INST]", raw=True, stream=False
    )
    assert done.response == "Hello there!"
    fake, _ = fake_openai
    assert fake.last.path == "/v1/completions"
    assert fake.last.body["prompt"] == "[INST]hi[/INST]"


async def test_embed(host: str, fake_openai: Any) -> None:
    result = await ollama.AsyncClient(host=host).embed(model=MODEL, input=["a", "b"])
    assert [list(v) for v in result.embeddings] == [pytest.approx([0.1, 0.2, 0.3])] * 2
    fake, _ = fake_openai
    assert fake.last.body["input"] == ["a", "b"]


async def test_legacy_embeddings(host: str) -> None:
    result = await ollama.AsyncClient(host=host).embeddings(model=MODEL, prompt="a")
    assert list(result.embedding) == pytest.approx([0.1, 0.2, 0.3])


async def test_list_show_and_ps(host: str) -> None:
    client = ollama.AsyncClient(host=host)
    listed = await client.list()
    assert [m.model for m in listed.models] == [MODEL]
    shown = await client.show(MODEL)
    assert shown.capabilities == ["completion"]
    running = await client.ps()
    assert [m.model for m in running.models] == [MODEL]


async def test_show_unknown_model_is_404(host: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        await ollama.AsyncClient(host=host).show("nope")
    assert info.value.status_code == 404


async def test_unknown_model_error_keeps_status(host: str) -> None:
    with pytest.raises(ollama.ResponseError) as info:
        await ollama.AsyncClient(host=host).chat(
            model="nope", messages=[{"role": "user", "content": "x"}], stream=False
        )
    assert info.value.status_code == 404
    assert "nope" in info.value.error


async def test_backend_dying_mid_stream_ends_with_an_error(host: str, fake_openai: Any) -> None:
    fake, _ = fake_openai
    fake.mode = "die"
    with pytest.raises(ollama.ResponseError):
        async for _ in await ollama.AsyncClient(host=host).chat(
            model=MODEL, messages=[{"role": "user", "content": "x"}], stream=True
        ):
            pass


async def test_reasoning_arrives_as_thinking(host: str, fake_openai: Any) -> None:
    fake, _ = fake_openai
    fake.reasoning = "pondering"
    parts = [
        p
        async for p in await ollama.AsyncClient(host=host).chat(
            model=MODEL, messages=[{"role": "user", "content": "x"}], think=True, stream=True
        )
    ]
    assert "".join(p.message.thinking or "" for p in parts) == "pondering"
    assert fake.last.body["reasoning_effort"] == "medium"
