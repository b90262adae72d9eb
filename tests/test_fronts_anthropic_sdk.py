"""The real ``anthropic`` SDK through ollamux, to a fake Ollama backend (as ``/api/chat``)
and to a fake OpenAI-compatible backend (as ``/v1/chat/completions``)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import anthropic
import pytest

from tests.fronts_support import front_gateway, script_tool_call

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
TOOLS: Any = [
    {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture(params=["ollama", "openai"])
async def front(request: Any, gateway_client: Any, fake_ollama: Any, fake_openai: Any) -> Any:
    """(base URL, the fake backend, its kind, the model it serves)."""
    kind = request.param
    client, fake, model = await front_gateway(gateway_client, kind, fake_ollama, fake_openai)
    return str(client.make_url("")).rstrip("/"), fake, kind, model


def _async(base_url: str) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url, api_key="x", max_retries=0)


def _text(fake: Any) -> str:
    return "".join(fake.words)


async def test_sync_message_reads_text_stop_reason_and_usage(front: Any) -> None:
    url, fake, kind, model = front

    def call() -> Any:
        client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
        return client.messages.create(
            model=model,
            max_tokens=50,
            system="be brief",
            messages=[{"role": "user", "content": "hi"}],
            stop_sequences=["\n\n"],
            extra_body={"temperature": 0.2},  # the API takes it; this SDK has no argument
        )

    done = await asyncio.to_thread(call)
    assert done.content[0].type == "text" and done.content[0].text == _text(fake)
    assert done.stop_reason == "end_turn"
    assert done.usage.output_tokens == len(fake.words) and done.usage.input_tokens > 0
    sent = fake.last.body
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    if kind == "ollama":
        assert fake.last.path == "/api/chat"
        assert sent["options"]["num_predict"] == 50
        assert sent["options"]["stop"] == ["\n\n"]
        assert sent["options"]["temperature"] == 0.2
    else:
        assert fake.last.path == "/v1/chat/completions"
        assert (sent["max_tokens"], sent["stop"], sent["temperature"]) == (50, ["\n\n"], 0.2)


async def test_async_stream_gives_text_deltas_and_a_final_message(front: Any) -> None:
    url, fake, _kind, model = front
    client = _async(url)
    async with client.messages.stream(
        model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        pieces = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(pieces) == _text(fake)
    assert len(pieces) == len(fake.words)
    assert final.stop_reason == "end_turn"
    assert final.content[0].text == _text(fake)  # type: ignore[union-attr]
    assert final.usage.output_tokens == len(fake.words)


async def test_raw_stream_has_anthropics_event_sequence(front: Any) -> None:
    url, _fake, _kind, model = front
    stream = await _async(url).messages.create(
        model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start"
    assert kinds[1] == "content_block_start"
    assert set(kinds[2:-3]) == {"content_block_delta"}
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_tool_use_then_a_tool_result_turn(front: Any) -> None:
    url, fake, kind, model = front
    script_tool_call(fake, kind)
    client = _async(url)
    asked = [{"role": "user", "content": "weather in Paris?"}]
    first = await client.messages.create(model=model, max_tokens=50, tools=TOOLS, messages=asked)  # type: ignore[arg-type]
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    fake.tool_calls = None
    second = await client.messages.create(
        model=model,
        max_tokens=50,
        tools=TOOLS,
        messages=[
            *asked,  # type: ignore[list-item]
            {"role": "assistant", "content": first.content},  # type: ignore[typeddict-item]
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            },
        ],
    )
    assert second.stop_reason == "end_turn"
    sent = fake.last.body["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "sunny"
    assert sent[-2]["role"] == "assistant"
    if kind == "ollama":
        assert sent[-1]["tool_name"] == "get_weather"
        assert sent[-2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
        assert fake.last.body["tools"][0]["function"]["name"] == "get_weather"
    else:
        assert sent[-1]["tool_call_id"] == use.id
        assert json.loads(sent[-2]["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


async def test_streamed_tool_use_accumulates_its_input(front: Any) -> None:
    url, fake, kind, model = front
    script_tool_call(fake, kind)
    async with _async(url).messages.stream(
        model=model,
        max_tokens=50,
        tools=TOOLS,
        messages=[{"role": "user", "content": "weather?"}],
    ) as stream:
        final = await stream.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert (use.name, use.input) == ("get_weather", {"city": "Paris"})
    assert final.stop_reason == "tool_use"


async def test_an_image_reaches_the_backend(front: Any) -> None:
    url, fake, kind, model = front
    await _async(url).messages.create(
        model=model,
        max_tokens=10,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                    {"type": "text", "text": "what is it?"},
                ],
            }
        ],
    )
    sent = fake.last.body["messages"][-1]
    if kind == "ollama":
        assert sent == {"role": "user", "content": "what is it?", "images": [PNG]}
    else:
        assert sent["content"][0] == {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PNG}"},
        }


async def test_thinking_is_asked_for_and_comes_back_as_a_block(front: Any) -> None:
    url, fake, kind, model = front
    if kind == "ollama":
        fake.thinking = "let me think"
    else:
        fake.reasoning = "let me think"
    done = await _async(url).messages.create(
        model=model,
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "x"}],
    )
    assert done.content[0].type == "thinking"
    assert done.content[0].thinking == "let me think"
    if kind == "ollama":
        assert fake.last.body["think"] is True
    else:
        assert fake.last.body["reasoning_effort"] == "medium"


async def test_a_bad_request_is_an_anthropic_400(front: Any) -> None:
    url, fake, _kind, model = front
    with pytest.raises(anthropic.BadRequestError) as info:
        await _async(url).messages.create(
            model=model,
            max_tokens=10,
            messages=[{"role": "robot", "content": "x"}],  # type: ignore[typeddict-item]
        )
    assert info.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages.0.role: must be 'user' or 'assistant'",
        },
    }
    assert not [r for r in fake.received if r.method == "POST"]


async def test_an_unknown_model_is_a_not_found_error(front: Any) -> None:
    url, _fake, _kind, _model = front
    with pytest.raises(anthropic.NotFoundError) as info:
        await _async(url).messages.create(
            model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert info.value.body["type"] == "error"  # type: ignore[index]


async def test_count_tokens_is_an_estimate(front: Any) -> None:
    url, fake, _kind, model = front
    counted = await _async(url).messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "x" * 400}]
    )
    assert counted.input_tokens == 104  # 400 characters / 4, plus 4 for the message
    assert not [r for r in fake.received if r.method == "POST"]


async def test_a_backend_dying_mid_stream_ends_with_an_error_event(front: Any) -> None:
    url, fake, _kind, model = front
    fake.mode = "die"
    with pytest.raises(anthropic.APIStatusError) as info:
        async with _async(url).messages.stream(
            model=model, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        ) as stream:
            async for _ in stream.text_stream:
                pass
    assert info.value.body["type"] == "error"  # type: ignore[index]
    assert "mid-stream" in info.value.body["error"]["message"]  # type: ignore[index]


async def test_sync_stream(front: Any) -> None:
    url, fake, _kind, model = front

    def call() -> tuple[list[str], Any]:
        client = anthropic.Anthropic(base_url=url, api_key="x", max_retries=0)
        with client.messages.stream(
            model=model, max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            return list(stream.text_stream), stream.get_final_message()

    pieces, final = await asyncio.to_thread(call)
    assert "".join(pieces) == _text(fake) == final.content[0].text


async def test_a_coding_agents_request_shape_is_understood(front: Any) -> None:
    """What coding agents send: system blocks with cache_control, metadata, a tool-result
    turn with is_error and text blocks, thinking history with a signature."""
    url, fake, kind, model = front
    done = await _async(url).messages.create(
        model=model,
        max_tokens=8000,
        metadata={"user_id": "u1"},
        system=[
            {"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}
        ],
        tools=TOOLS,
        messages=[
            {"role": "user", "content": [{"type": "text", "text": "run it"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "use the tool", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_9",
                        "is_error": True,
                        "content": [
                            {
                                "type": "text",
                                "text": "failed",
                                "cache_control": {"type": "ephemeral"},
                            }
                        ],
                    }
                ],
            },
        ],
    )
    assert done.content[0].text == _text(fake)  # type: ignore[union-attr]
    sent = fake.last.body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[0]["content"] == "You are an agent."
    assert sent[-1]["content"] == "failed"
    if kind == "ollama":
        assert sent[2]["thinking"] == "use the tool"
        assert fake.last.body["options"]["num_predict"] == 8000
    else:
        assert sent[2]["reasoning"] == "use the tool"
