"""The real ``openai`` SDK's Responses API (``responses.create`` / ``responses.stream``)
through ollamux, to a fake Ollama backend (as ``/api/chat``) and to a fake
OpenAI-compatible backend (as ``/v1/chat/completions``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.fronts_support import front_gateway, script_tool_call

TOOLS: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture(params=["ollama", "openai"])
async def front(request: Any, gateway_client: Any, fake_ollama: Any, fake_openai: Any) -> Any:
    """(base URL, the fake backend, its kind, the model it serves)."""
    kind = request.param
    client, fake, model = await front_gateway(gateway_client, kind, fake_ollama, fake_openai)
    return str(client.make_url("/v1")), fake, kind, model


def _async(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)


async def test_sync_create_reads_output_text_and_usage(front: Any) -> None:
    url, fake, kind, model = front

    def call() -> Any:
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
        return client.responses.create(
            model=model,
            instructions="be brief",
            input="hi",
            max_output_tokens=50,
            temperature=0.3,
        )

    done = await asyncio.to_thread(call)
    assert done.output_text == "".join(fake.words)
    assert done.status == "completed"
    assert done.usage is not None and done.usage.output_tokens == len(fake.words)
    sent = fake.last.body
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    if kind == "ollama":
        assert fake.last.path == "/api/chat"
        assert sent["options"]["num_predict"] == 50
        assert sent["options"]["temperature"] == 0.3
    else:
        assert fake.last.path == "/v1/chat/completions"
        assert (sent["max_tokens"], sent["temperature"]) == (50, 0.3)


async def test_stream_gives_text_deltas_and_a_completed_response(front: Any) -> None:
    url, fake, _kind, model = front
    async with _async(url).responses.stream(model=model, input="hi") as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert "".join(deltas) == "".join(fake.words) == final.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.usage is not None and final.usage.output_tokens == len(fake.words)


async def test_a_function_call_then_its_output_as_an_input_item(front: Any) -> None:
    url, fake, kind, model = front
    script_tool_call(fake, kind)
    client = _async(url)
    first = await client.responses.create(model=model, input="weather?", tools=TOOLS)
    call = next(item for item in first.output if item.type == "function_call")
    assert (call.name, json.loads(call.arguments)) == ("get_weather", {"city": "Paris"})
    fake.tool_calls = None
    second = await client.responses.create(
        model=model,
        tools=TOOLS,
        input=[
            {"role": "user", "content": "weather?"},
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
    )
    assert second.output_text == "".join(fake.words)
    sent = fake.last.body["messages"]
    assert sent[-1]["role"] == "tool" and sent[-1]["content"] == "sunny"
    if kind == "ollama":
        assert sent[-1]["tool_name"] == "get_weather"
        assert sent[-2]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    else:
        assert sent[-1]["tool_call_id"] == call.call_id
        assert fake.last.body["tools"][0]["function"]["name"] == "get_weather"


async def test_streamed_function_call_arguments(front: Any) -> None:
    url, fake, kind, model = front
    script_tool_call(fake, kind)
    async with _async(url).responses.stream(model=model, input="weather?", tools=TOOLS) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    assert json.loads("".join(deltas)) == {"city": "Paris"}
    call = next(item for item in final.output if item.type == "function_call")
    assert call.name == "get_weather"


class Weather(BaseModel):
    city: str
    sunny: bool


async def test_json_schema_text_format_reaches_the_backend_and_parses(front: Any) -> None:
    url, fake, kind, model = front
    fake.words = ['{"city": ', '"Paris", ', '"sunny": true}']
    parsed = await _async(url).responses.parse(model=model, input="x", text_format=Weather)
    assert parsed.output_parsed == Weather(city="Paris", sunny=True)
    if kind == "ollama":
        assert fake.last.body["format"]["properties"]["city"] == {"title": "City", "type": "string"}
    else:
        fmt = fake.last.body["response_format"]
        assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Weather"


async def test_reasoning_effort_reaches_the_backend(front: Any) -> None:
    url, fake, kind, model = front
    await _async(url).responses.create(model=model, input="x", reasoning={"effort": "high"})
    if kind == "ollama":
        assert fake.last.body["think"] == "high"
    else:
        assert fake.last.body["reasoning_effort"] == "high"


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"previous_response_id": "resp_1"}, "previous_response_id"), ({"store": True}, "store")],
)
async def test_state_is_a_clear_400(front: Any, extra: dict[str, Any], param: str) -> None:
    url, fake, _kind, model = front
    with pytest.raises(openai.BadRequestError) as info:
        await _async(url).responses.create(model=model, input="x", **extra)
    assert info.value.body["param"] == param  # type: ignore[index]
    assert "keeps no state" in info.value.message
    assert not [r for r in fake.received if r.method == "POST"]


async def test_a_backend_dying_mid_stream_ends_with_an_error_event(front: Any) -> None:
    url, fake, _kind, model = front
    fake.mode = "die"
    stream = await _async(url).responses.create(model=model, input="x", stream=True)
    events = [event async for event in stream]
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert "mid-stream" in events[-2].message  # type: ignore[union-attr]
    assert events[-1].response.status == "failed"  # type: ignore[union-attr]
