"""Rules for an OpenAI client over an Ollama backend, one test per rule (pure functions
and the stream transform, with real request/response shapes)."""

from __future__ import annotations

import base64
import json
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.errors import GatewayError
from ollamux.exchange import ResponseHead
from ollamux.plugins.translate import ollama_to_openai_response as res
from ollamux.plugins.translate import openai_to_ollama_request as req
from ollamux.plugins.translate.stream import OllamaToOpenAI

MODEL = "llama3.2:latest"
OPENAI_DEFAULTS = {"temperature": 1.0, "top_p": 1.0}
USER = {"role": "user", "content": "hi"}


def chat(**extra: Any) -> dict[str, Any]:
    return req.chat_request({"model": MODEL, "messages": [USER], **extra})


# --- requests -------------------------------------------------------------------------


def test_stream_absent_means_not_streaming() -> None:
    assert chat()["stream"] is False
    assert chat(stream=True)["stream"] is True


def test_max_tokens_becomes_num_predict() -> None:
    assert chat(max_tokens=32)["options"] == {"num_predict": 32, **OPENAI_DEFAULTS}


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    assert chat(max_tokens=5, max_completion_tokens=9)["options"]["num_predict"] == 9


def test_stop_string_becomes_a_list() -> None:
    assert chat(stop="\n")["options"]["stop"] == ["\n"]
    assert chat(stop=["a", "b"])["options"]["stop"] == ["a", "b"]


def test_stop_of_another_type_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        chat(stop=[1])
    assert (info.value.status, info.value.param) == (400, "stop")


def test_sampling_options_keep_their_names() -> None:
    options = chat(seed=7, temperature=0.2, top_p=0.9, frequency_penalty=0.5, presence_penalty=0.1)[
        "options"
    ]
    assert options == {
        "seed": 7,
        "temperature": 0.2,
        "top_p": 0.9,
        "frequency_penalty": 0.5,
        "presence_penalty": 0.1,
    }


def test_no_sampling_parameters_means_openais_defaults() -> None:
    assert chat()["options"] == {"temperature": 1.0, "top_p": 1.0}


def test_completions_also_get_openais_penalty_defaults() -> None:
    out = req.completion_request({"model": MODEL, "prompt": "x", "top_p": 0})
    assert out["options"] == {
        "temperature": 1.0,
        "top_p": 1.0,
        "frequency_penalty": 0.0,
        "presence_penalty": 0.0,
    }


def test_json_object_response_format_becomes_format_json() -> None:
    assert chat(response_format={"type": "json_object"})["format"] == "json"


def test_json_schema_response_format_becomes_the_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema, "strict": True}}
    assert chat(response_format=fmt)["format"] == schema


def test_text_response_format_adds_nothing() -> None:
    assert "format" not in chat(response_format={"type": "text"})


@pytest.mark.parametrize(
    ("effort", "think"), [("low", "low"), ("medium", "medium"), ("high", "high"), ("none", False)]
)
def test_reasoning_effort_becomes_think(effort: str, think: Any) -> None:
    assert chat(reasoning_effort=effort)["think"] == think
    assert chat(reasoning={"effort": effort})["think"] == think


def test_unknown_reasoning_effort_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        chat(reasoning_effort="extreme")
    assert info.value.status == 400
    assert info.value.message.startswith('invalid reasoning value: "extreme"')


@pytest.mark.parametrize("effort", ["max", "xhigh", "ultra"])
def test_efforts_above_high_become_think_max(effort: str) -> None:
    assert chat(reasoning_effort=effort)["think"] == "max"


def test_data_uri_images_become_images() -> None:
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n....").decode()
    content = [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]
    out = req.chat_request({"model": MODEL, "messages": [{"role": "user", "content": content}]})
    assert out["messages"] == [{"role": "user", "content": "what is this?", "images": [png]}]


def test_http_image_url_is_a_clear_400() -> None:
    content = [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]
    with pytest.raises(GatewayError) as info:
        req.chat_request({"model": MODEL, "messages": [{"role": "user", "content": content}]})
    assert info.value.status == 400
    assert "please use base64 encoded data" in info.value.message


def test_assistant_tool_call_arguments_are_parsed_to_objects() -> None:
    calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
    ]
    out = chat(messages=[USER, {"role": "assistant", "content": None, "tool_calls": calls}])
    assert out["messages"][1] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}
        ],
    }


def test_tool_call_arguments_that_are_not_json_are_a_400() -> None:
    calls = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]
    with pytest.raises(GatewayError) as info:
        chat(messages=[USER, {"role": "assistant", "tool_calls": calls}])
    assert info.value.status == 400


def test_tool_messages_are_paired_with_their_call() -> None:
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    out = chat(
        messages=[
            USER,
            {"role": "assistant", "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_b", "content": "from g"},
            {"role": "tool", "tool_call_id": "call_a", "content": "from f"},
        ]
    )
    assert [(m["tool_name"], m["content"]) for m in out["messages"][2:]] == [
        ("g", "from g"),
        ("f", "from f"),
    ]


def test_developer_role_becomes_system() -> None:
    out = chat(messages=[{"role": "developer", "content": "be brief"}, USER])
    assert out["messages"][0] == {"role": "system", "content": "be brief"}


def test_empty_messages_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        req.chat_request({"model": MODEL, "messages": []})
    assert (info.value.status, info.value.param) == (400, "messages")


def test_more_than_one_choice_is_a_400() -> None:
    with pytest.raises(GatewayError):
        chat(n=2)


def test_tools_pass_through_and_tool_choice_none_drops_them() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert chat(tools=tools)["tools"] == tools
    assert "tools" not in chat(tools=tools, tool_choice="none")


def test_completion_prompt_and_suffix() -> None:
    out = req.completion_request(
        {"model": MODEL, "prompt": ["def f("], "suffix": "return 1", "max_tokens": 8}
    )
    assert out == {
        "model": MODEL,
        "prompt": "def f(",
        "stream": False,
        "suffix": "return 1",
        "options": {
            "num_predict": 8,
            "temperature": 1.0,
            "top_p": 1.0,
            "frequency_penalty": 0.0,
            "presence_penalty": 0.0,
        },
    }


def test_token_array_embedding_input_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        req.embedding_request({"model": MODEL, "input": [[1, 2, 3]]})
    assert info.value.param == "input"


def test_embedding_dimensions_are_kept() -> None:
    out = req.embedding_request({"model": MODEL, "input": "x", "dimensions": 64})
    assert out == {"model": MODEL, "input": "x", "dimensions": 64}


# --- responses --------------------------------------------------------------------------

FINAL = {
    "model": MODEL,
    "created_at": "2025-01-01T00:00:00.123456789Z",
    "message": {"role": "assistant", "content": ""},
    "done": True,
    "done_reason": "stop",
    "total_duration": 5_000_000,
    "prompt_eval_count": 7,
    "eval_count": 4,
}


def piece(text: str = "", **message: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": text, **message},
        "done": False,
    }


def test_stream_has_one_id_and_created_and_role_first_only() -> None:
    stream = res.ChatStream(MODEL)
    chunks = [c for obj in (piece("Hel"), piece("lo"), FINAL) for c in stream.feed(obj)]
    assert len({(c["id"], c["created"]) for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Hel"}
    assert chunks[1]["choices"][0]["delta"] == {"content": "lo"}
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)


def test_stream_ends_with_finish_reason_chunk() -> None:
    stream = res.ChatStream(MODEL)
    stream.feed(piece("x"))
    last = stream.feed(FINAL)[-1]
    assert last["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }


def test_length_done_reason_is_length() -> None:
    stream = res.ChatStream(MODEL)
    assert stream.feed({**FINAL, "done_reason": "length"})[-1]["choices"][0]["finish_reason"] == (
        "length"
    )


def test_usage_chunk_when_include_usage() -> None:
    stream = res.ChatStream(MODEL, include_usage=True)
    tail = stream.feed(FINAL)[-1]
    assert tail["choices"] == []
    assert tail["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


def test_no_usage_chunk_by_default() -> None:
    assert all("usage" not in c for c in res.ChatStream(MODEL).feed(FINAL))


def test_streamed_tool_calls_get_ids_indexes_and_json_arguments() -> None:
    stream = res.ChatStream(MODEL)
    call = {"function": {"name": "f", "arguments": {"a": 1}}}
    chunks = stream.feed(piece(tool_calls=[call, {**call, "id": "call_kept"}]))
    calls = chunks[0]["choices"][0]["delta"]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert calls[0]["id"].startswith("call_") and calls[1]["id"] == "call_kept"
    assert calls[0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert calls[0]["type"] == "function"
    assert stream.feed(FINAL)[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_thinking_becomes_reasoning() -> None:
    chunk = res.ChatStream(MODEL).feed(piece(thinking="hmm"))[0]
    assert chunk["choices"][0]["delta"]["reasoning"] == "hmm"
    whole = res.chat_completion(
        {**FINAL, "message": {"role": "assistant", "content": "a", "thinking": "b"}}
    )
    assert whole["choices"][0]["message"]["reasoning"] == "b"


def test_whole_chat_completion_shape() -> None:
    whole = res.chat_completion({**FINAL, "message": {"role": "assistant", "content": "Hi"}})
    assert whole["object"] == "chat.completion"
    assert whole["id"].startswith("chatcmpl-")
    assert whole["created"] == 1735689600
    assert whole["choices"][0]["message"] == {"role": "assistant", "content": "Hi"}
    assert whole["choices"][0]["finish_reason"] == "stop"
    assert whole["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}


def test_whole_tool_calls_have_null_content_and_tool_calls_reason() -> None:
    message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
    }
    whole = res.chat_completion({**FINAL, "message": message})
    choice = whole["choices"][0]
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"] == {"name": "f", "arguments": "{}"}
    assert choice["finish_reason"] == "tool_calls"


def test_embeddings_base64_are_little_endian_float32() -> None:
    out = res.embedding_list(
        {"model": MODEL, "embeddings": [[0.5, -1.0]], "prompt_eval_count": 2}, MODEL, "base64"
    )
    raw = base64.b64decode(out["data"][0]["embedding"])
    assert struct.unpack("<2f", raw) == (0.5, -1.0)
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}


def test_tags_become_openai_model_list() -> None:
    tags = {
        "models": [
            {"name": "llama3.2:latest", "modified_at": "2025-01-01T00:00:00Z"},
            {"name": "hf.co/org/repo:Q4", "modified_at": "2025-01-01T00:00:00Z"},
        ]
    }
    assert res.model_list(tags) == {
        "object": "list",
        "data": [
            {
                "id": "llama3.2:latest",
                "object": "model",
                "created": 1735689600,
                "owned_by": "library",
            },
            {
                "id": "hf.co/org/repo:Q4",
                "object": "model",
                "created": 1735689600,
                "owned_by": "org",
            },
        ],
    }


# --- the stream transform ---------------------------------------------------------------


def _exchange() -> Any:
    return SimpleNamespace(dialect=Dialect.OPENAI, usage={}, error="", outcome=None, state={})


def _transform(
    exchange: Any, status: int = 200, ct: str = "application/x-ndjson"
) -> OllamaToOpenAI:
    t = OllamaToOpenAI(exchange, lambda o: res.chat_completion(o, MODEL), res.ChatStream(MODEL))
    head = t.head(ResponseHead(status, CIMultiDict({"Content-Type": ct, "Content-Length": "9"})))
    assert "Content-Length" not in head.headers
    return t


def _events(body: bytes) -> list[Any]:
    out = []
    for block in body.decode().split("\n\n"):
        if block.startswith("data: "):
            data = block[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_lines_split_across_reads_become_whole_events() -> None:
    ex = _exchange()
    t = _transform(ex)
    body = b"".join(json.dumps(o).encode() + b"\n" for o in (piece("Hel"), piece("lo"), FINAL))
    out = b"".join(t.feed(body[i : i + 7]) for i in range(0, len(body), 7)) + t.end()
    events = _events(out)
    assert events[-1] == "[DONE]"
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "Hello"
    assert ex.usage == {"prompt_tokens": 7, "completion_tokens": 4}


def test_stream_content_type_is_event_stream() -> None:
    t = OllamaToOpenAI(_exchange(), lambda o: o, res.ChatStream(MODEL))
    head = t.head(ResponseHead(200, CIMultiDict({"Content-Type": "application/x-ndjson"})))
    assert head.headers["Content-Type"] == "text/event-stream"


def test_mid_stream_error_is_an_sse_error_event_then_the_end() -> None:
    ex = _exchange()
    t = _transform(ex)
    body = json.dumps(piece("a")).encode() + b'\n{"error":"model runner crashed"}\n'
    out = t.feed(body) + t.feed(json.dumps(piece("b")).encode() + b"\n") + t.end()
    events = _events(out)
    assert events[-1]["error"]["message"] == "model runner crashed"
    assert "[DONE]" not in events
    assert ex.stream_broken is True


def test_error_status_keeps_status_and_becomes_openai_error_object() -> None:
    ex = _exchange()
    t = _transform(ex, 404, "application/json")
    out = t.feed(b'{"error":"model \'x\' not found"}') + t.end()
    assert json.loads(out) == {
        "error": {
            "message": "model 'x' not found",
            "type": "not_found_error",
            "param": None,
            "code": None,
        }
    }


def test_text_fast_path_writes_the_same_chunk_as_the_general_path() -> None:
    stream = res.ChatStream(MODEL)
    stream.feed(piece("first"))
    event = stream.content_event(piece('say "hi"\n'))
    assert event is not None and event.startswith(b"data: ") and event.endswith(b"\n\n")
    assert json.loads(event[6:]) == stream.feed(piece('say "hi"\n'))[0]
    assert stream.content_event(piece("x", thinking="y")) is None


def test_text_fast_path_leaves_a_message_with_other_members_to_feed_even_without_a_role() -> None:
    stream = res.ChatStream(MODEL)
    stream.feed(piece("first"))
    line = {**piece(), "message": {"content": "x", "thinking": "y"}}
    assert stream.content_event(line) is None
    deltas = [c["choices"][0]["delta"] for c in stream.feed(line)]
    assert deltas == [{"reasoning": "y"}, {"content": "x"}]


def _events_of(chunks: list[dict[str, Any]]) -> bytes:
    return b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)


@pytest.mark.parametrize("model", [MODEL, 'q"uo\\te', "modèle"])
@pytest.mark.parametrize("usage", [False, True])
@pytest.mark.parametrize("reason", ["stop", "length", "load", None])
@pytest.mark.parametrize("called", [False, True])
def test_first_and_last_events_are_the_bytes_the_general_path_writes(
    model: str, usage: bool, reason: str | None, called: bool
) -> None:
    fast, general = res.ChatStream(model, usage), res.ChatStream(model, usage)
    general._id = fast.id
    assert fast.content_event(piece("Hel")) == _events_of(general.feed(piece("Hel")))
    if called:  # a tool call before the end makes a "stop" end a "tool_calls" one
        call = {"function": {"name": "f", "arguments": {}}}
        for stream in (fast, general):
            stream.feed(piece("", tool_calls=[call]))
    final = {**FINAL, "done_reason": reason}
    assert fast.last_events(final) == _events_of(general.feed(final))
    assert fast.done and fast.usage == general.usage


def test_last_events_leave_a_final_line_with_text_or_tool_calls_to_feed() -> None:
    stream = res.ChatStream(MODEL)
    stream.feed(piece("first"))
    with_text = {**FINAL, "message": {"role": "assistant", "content": "end"}}
    call = {"function": {"name": "f", "arguments": {}}}
    with_call = {**FINAL, "message": {"role": "assistant", "content": "", "tool_calls": [call]}}
    assert stream.last_events(with_text) is None
    assert stream.last_events(with_call) is None
    assert stream.last_events(piece("not the end")) is None
    assert not stream.done
    assert res.ChatStream(MODEL).last_events(FINAL) is None  # nothing said yet: feed says the role


def _go_line(content: str, **extra: Any) -> bytes:
    """A line as Ollama's Go server writes it: compact, keys in struct order."""
    message = {"role": "assistant", "content": content, **extra}
    obj = {"model": MODEL, "created_at": "2025-01-01T00:00:00Z", "message": message, "done": False}
    return json.dumps(obj, separators=(",", ":")).encode()


def test_raw_fast_path_copies_the_content_string_of_ollamas_own_lines() -> None:
    stream = res.ChatStream(MODEL)
    stream.feed(piece("first"))
    for text in ['say "hi"}', "\\", 'a"},"done":false}']:
        event = stream.content_event_raw(_go_line(text))
        assert event is not None
        assert json.loads(event[6:])["choices"][0]["delta"] == {"content": text}


def test_raw_fast_path_leaves_other_lines_to_the_parser() -> None:
    stream = res.ChatStream(MODEL)
    assert stream.content_event_raw(_go_line("x")) is None  # role not sent yet
    stream.feed(piece("first"))
    assert stream.content_event_raw(_go_line("", thinking="y")) is None
    assert stream.content_event_raw(_go_line("")) is None
    assert stream.content_event_raw(b'{"error":"x"}') is None


def test_a_read_of_ollama_text_lines_becomes_their_events_in_order() -> None:
    stream = res.ChatStream(MODEL)
    stream.feed(piece("first"))
    texts = ["a", 'say "hi"', "\\", "\u00e9"]
    block = stream.content_events_raw(b"\n".join(_go_line(text) for text in texts))
    assert block is not None
    assert [e["choices"][0]["delta"]["content"] for e in _events(block)] == texts


@pytest.mark.parametrize(
    "odd",
    [
        _go_line("", thinking="y"),  # not text only
        _go_line(""),  # nothing to say
        b"",  # a blank line
        b'{"error":"x"}',
        _go_line("x")[:-1] + b',"extra":1}',  # another shape
        _go_line("x").replace(b'"x"', b'"\xff"'),  # not UTF-8
    ],
)
def test_a_read_holding_any_other_line_is_left_to_the_line_by_line_path(odd: bytes) -> None:
    stream = res.ChatStream(MODEL)
    stream.feed(piece("first"))
    assert stream.content_events_raw(_go_line("a") + b"\n" + odd) is None


def test_text_lines_around_another_line_in_one_read_all_arrive() -> None:
    t = _transform(_exchange())
    lines = [piece("first"), piece("a"), piece("", thinking="hmm"), piece("b"), FINAL]
    body = b"".join(json.dumps(o, separators=(",", ":")).encode() + b"\n" for o in lines)
    events = _events(t.feed(body) + t.end())
    deltas = [e["choices"][0]["delta"] for e in events if isinstance(e, dict) and e["choices"]]
    assert [d.get("content") or d.get("reasoning") for d in deltas if d] == [
        "first",
        "a",
        "hmm",
        "b",
    ]
    assert events[-1] == "[DONE]"


def test_nothing_follows_a_mid_stream_error_in_the_same_read() -> None:
    t = _transform(_exchange())
    body = b'{"error":"boom"}\n' + json.dumps(piece("late")).encode() + b"\n"
    out = t.feed(body) + t.end()
    assert [e["error"]["message"] for e in _events(out)] == ["boom"]


def test_completion_stream_chunks_and_usage_chunk() -> None:
    stream = res.CompletionStream(MODEL, include_usage=True)
    generate_piece = {
        "model": MODEL,
        "created_at": "2025-01-01T00:00:00Z",
        "response": "ab",
        "done": False,
    }
    first = stream.feed(generate_piece)
    final = {
        **generate_piece,
        "response": "",
        "done": True,
        "done_reason": "length",
        "prompt_eval_count": 2,
        "eval_count": 5,
    }
    *rest, usage = stream.feed(final)
    assert first[0]["object"] == "text_completion"
    assert (
        first[0]["choices"][0]["text"] == "ab" and first[0]["choices"][0]["finish_reason"] is None
    )
    assert rest[-1]["choices"][0]["finish_reason"] == "length"
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] == 5
    assert len({c["id"] for c in [*first, *rest, usage]}) == 1
