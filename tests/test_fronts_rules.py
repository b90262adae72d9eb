"""Rules of the Messages and Responses converters, one per test or table row: every field a
converter reads is checked (a 400 naming it), and an answer the writers cannot understand
is never rendered as a success."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.errors import GatewayError, error_payload, stream_error_bytes
from ollamux.exchange import ResponseHead, TaskState
from ollamux.plugins.translate import anthropic_request as an_req
from ollamux.plugins.translate import anthropic_response as an_res
from ollamux.plugins.translate import responses_request as rs_req
from ollamux.plugins.translate import responses_response as rs_res
from ollamux.plugins.translate import textpath
from ollamux.plugins.translate.common import Unreadable, json_string, json_template
from ollamux.plugins.translate.stream import FrontTransform

USER = [{"role": "user", "content": "hi"}]


def messages(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 10, "messages": USER, **extra}


# --- the Anthropic dialect ---------------------------------------------------------------


def test_messages_paths_are_the_anthropic_dialect() -> None:
    assert Dialect.of_path("/v1/messages") is Dialect.ANTHROPIC
    assert Dialect.of_path("/v1/messages/count_tokens") is Dialect.ANTHROPIC
    assert Dialect.of_path("/v1/messagesx") is Dialect.OPENAI
    assert Dialect.of_path("/v1/responses") is Dialect.OPENAI


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
    ],
)
def test_anthropic_errors_have_anthropics_type_per_status(status: int, kind: str) -> None:
    assert error_payload(Dialect.ANTHROPIC, "m", status) == {
        "type": "error",
        "error": {"type": kind, "message": "m"},
    }


def test_a_broken_anthropic_stream_ends_with_a_named_error_event() -> None:
    assert stream_error_bytes(Dialect.ANTHROPIC, "gone") == (
        b'event: error\ndata: {"type": "error", "error": {"type": "api_error", '
        b'"message": "gone"}}\n\n'
    )


# --- Messages requests: every field checked ------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"max_tokens": 0}, "max_tokens: must be a positive integer"),
        ({"max_tokens": "5"}, "max_tokens: must be a positive integer"),
        ({"messages": "hi"}, "messages: must be a list of messages"),
        ({"messages": []}, "messages: at least one message is required"),
        ({"messages": ["hi"]}, "messages.0: must be an object"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content: must be a string"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]},
            "messages.0.content.0.text: must be a string",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "document"}]}]},
            "messages.0.content.0.type: 'document' is not supported in a user message",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "image", "source": "x"}]}]},
            "messages.0.content.0.source: must be an object",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/bmp", "data": ""},
                            }
                        ],
                    }
                ]
            },
            "messages.0.content.0.source.media_type: must be one of",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
            "messages.0.content.0.tool_use_id: must be a non-empty string",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "x"}]}
                        ],
                    }
                ]
            },
            "messages.0.content.0.content.0.type: a tool result holds only",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]}]},
            "messages.0.content.0.name: must be a non-empty string",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": []}],
                    }
                ]
            },
            "messages.0.content.0.input: must be an object",
        ),
        (
            {"messages": [{"role": "assistant", "content": [{"type": "thinking"}]}]},
            "messages.0.content.0.thinking: must be a string",
        ),
        ({"system": [{"type": "image"}]}, "system.0.source: must be an object"),
        ({"system": 3}, "system: must be a string"),
        ({"temperature": "hot"}, "'temperature' must be a number"),
        ({"top_p": []}, "'top_p' must be a number"),
        ({"top_k": -1}, "top_k: must be a non-negative integer"),
        ({"stop_sequences": "x"}, "'stop_sequences' must be a list"),
        ({"stop_sequences": [1]}, "stop_sequences: must be a list of strings"),
        ({"stream": "yes"}, "'stream' must be true or false"),
        ({"tools": {}}, "'tools' must be a list"),
        ({"tools": [{"name": "f"}]}, "tools.0.input_schema: must be an object"),
        ({"tools": [{"input_schema": {}}]}, "tools.0.name: must be a non-empty string"),
        ({"tool_choice": "auto"}, "'tool_choice' must be an object"),
        ({"tool_choice": {"type": "some"}}, "tool_choice.type: must be one of"),
        ({"tool_choice": {"type": "tool"}}, "tool_choice.name: must be a non-empty string"),
        (
            {
                "tools": [{"name": "f", "input_schema": {}}],
                "tool_choice": {"type": "tool", "name": "g"},
            },
            "tool_choice.name: no tool named 'g' in tools",
        ),
        ({"thinking": {"type": "maybe"}}, "thinking.type: must be"),
        ({"thinking": {"type": "enabled", "budget_tokens": 0}}, "thinking.budget_tokens"),
        ({"output_config": {"effort": "extreme"}}, "output_config.effort: must be one of"),
        ({"output_config": {"format": {"type": "regex"}}}, "output_config.format.type"),
        (
            {"output_config": {"format": {"type": "json_schema", "schema": "x"}}},
            "output_config.format.schema: must be an object",
        ),
        ({"metadata": "x"}, "'metadata' must be an object"),
    ],
)
def test_a_bad_messages_field_is_a_400_naming_it(extra: dict[str, Any], message: str) -> None:
    for for_ollama in (True, False):
        with pytest.raises(GatewayError) as info:
            an_req.chat_request(messages(**extra), for_ollama)
        assert info.value.status == 400
        assert message in info.value.message


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"options": []}, "options"), ({"keep_alive": True}, "keep_alive")],
)
def test_bad_ollama_extensions_are_a_400(extra: dict[str, Any], param: str) -> None:
    body = messages(**extra)
    with pytest.raises(GatewayError) as info:
        an_req.ollama_extras(body, {"options": {}})
    assert info.value.param == param


def test_an_assistant_turn_of_tool_calls_only_has_empty_content() -> None:
    body = messages(
        messages=[
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f"}]},
        ]
    )
    (msg,) = an_req.chat_request(body, for_ollama=False)["messages"]
    assert msg == {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ],
    }


def test_count_tokens_counts_images_tool_calls_and_schemas() -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": [image, {"type": "text", "text": "abcd"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "ab", "input": {}}],
            },
        ],
    }
    # "abcd" (4) + "ab" (2) + "{}" (2) = 8 characters -> 2; 2 messages -> 8; 1 image
    assert an_req.count_tokens(body) == 2 + 8 + an_req.IMAGE_TOKENS


# --- Responses requests: every field checked ---------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "param", "message"),
    [
        ({"input": 5}, "input", "'input' must be a string or a list of input items"),
        ({"input": []}, "input", "'input' must not be empty"),
        ({"input": ["x"]}, "input", "'input[0]' must be an object"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input", "'input[0].role' must be"),
        ({"input": [{"role": "user", "content": 5}]}, "input", "'input[0].content' must be"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file"}]}]},
            "input",
            "'input[0].content[0].type' 'input_file' is not supported",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "input",
            "file ids are not supported",
        ),
        (
            {"input": [{"type": "function_call", "name": "f"}]},
            "input",
            "'input[0].call_id' must be a non-empty string",
        ),
        (
            {"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": 1}]},
            "input",
            "'input[0].arguments' must be a JSON string",
        ),
        (
            {"input": [{"type": "function_call_output", "output": "x"}]},
            "input",
            "'input[0].call_id' must be a non-empty string",
        ),
        ({"instructions": 5}, "instructions", "'instructions' must be a string"),
        ({"max_output_tokens": 0}, "max_output_tokens", "must be a positive integer"),
        ({"temperature": "x"}, "temperature", "'temperature' must be a number"),
        ({"top_p": "x"}, "top_p", "'top_p' must be a number"),
        ({"stream": 1}, "stream", "'stream' must be true or false"),
        ({"parallel_tool_calls": "x"}, "parallel_tool_calls", "must be true or false"),
        ({"tools": [{"type": "function"}]}, "tools", "'tools[0].name' must be a non-empty string"),
        (
            {"tools": [{"type": "function", "name": "f", "parameters": 1}]},
            "tools",
            "'tools[0].parameters' must be an object",
        ),
        ({"tool_choice": "sometimes"}, "tool_choice", "'tool_choice' must be"),
        ({"tool_choice": {"type": "function"}}, "tool_choice", "'tool_choice.name'"),
        ({"text": "json"}, "text", "'text' must be an object"),
        ({"text": {"format": {"type": "xml"}}}, "text", "'text.format.type' must be"),
        ({"text": {"format": {"type": "json_schema"}}}, "text", "'text.format.schema'"),
        ({"reasoning": {"effort": "huge"}}, "reasoning", "'reasoning.effort' 'huge'"),
        ({"reasoning": "high"}, "reasoning", "'reasoning' must be an object"),
        ({"conversation": "c1"}, "conversation", "keeps no state"),
        ({"store": "yes"}, "store", "'store' must be true or false"),
        ({"store": True}, "store", "keeps no state"),
        ({"background": True}, "background", "'background: true' is not supported"),
        ({"metadata": []}, "metadata", "'metadata' must be an object"),
    ],
)
def test_a_bad_responses_field_is_a_400_naming_it(
    extra: dict[str, Any], param: str, message: str
) -> None:
    body = {"model": "m", "input": "hi", **extra}
    for for_ollama in (True, False):
        with pytest.raises(GatewayError) as info:
            rs_req.chat_request(body, for_ollama)
        assert (info.value.status, info.value.param) == (400, param)
        assert message in info.value.message


def test_store_false_is_fine() -> None:
    out = rs_req.chat_request({"model": "m", "input": "hi", "store": False}, True)
    assert out["messages"] == [{"role": "user", "content": "hi"}]


def test_consecutive_function_calls_join_one_assistant_message() -> None:
    calls = [
        {"type": "function_call", "call_id": f"c{i}", "name": "f", "arguments": "{}"}
        for i in range(2)
    ]
    out = rs_req.chat_request({"model": "m", "input": calls}, False)
    (msg,) = out["messages"]
    assert [c["id"] for c in msg["tool_calls"]] == ["c0", "c1"]


# --- answers that cannot be understood -----------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        {"done": True},  # no message
        {"message": "Hi", "done": True},
        {"message": {"content": 5}, "done": True},
        {"message": {"content": "Hi", "tool_calls": "f"}, "done": True},
        {"message": {"content": "Hi"}, "done": True, "eval_count": -1},
    ],
)
def test_a_whole_answer_of_the_wrong_shape_is_unreadable(answer: dict[str, Any]) -> None:
    with pytest.raises(Unreadable):
        an_res.message(answer, "m")
    with pytest.raises(Unreadable):
        rs_res.response(answer, "m", rs_req.echo_of({}))


@pytest.mark.parametrize(
    "writer",
    [lambda: an_res.MessageStream("m"), lambda: rs_res.ResponseStream("m", rs_req.echo_of({}))],
)
def test_a_stream_line_of_the_wrong_shape_is_unreadable(writer: Any) -> None:
    with pytest.raises(Unreadable):
        writer().feed({"message": {"content": 1}, "done": False})
    with pytest.raises(Unreadable):
        writer().feed({"message": {"content": "x"}, "done": "no"})


def _exchange(path: str) -> Any:
    return SimpleNamespace(
        path=path,
        dialect=Dialect.of_path(path),
        model="m",
        error=None,
        outcome=TaskState.RUNNING,
        stream_broken=False,
        usage=None,
    )


def _ndjson(transform: FrontTransform) -> None:
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": "application/x-ndjson"})))


@pytest.mark.parametrize("ollama", [True, False])
def test_garbage_before_any_byte_fails_the_attempt(ollama: bool) -> None:
    writer = an_res.MessageStream("m")
    transform = FrontTransform(_exchange("/v1/messages"), ollama, lambda o: o, writer)
    kind = "application/x-ndjson" if ollama else "text/event-stream"
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": kind})))
    with pytest.raises(Unreadable):
        transform.feed(b"[1, 2]\n" if ollama else b"data: [1, 2]\n\n")


def test_garbage_after_bytes_went_out_ends_the_stream_with_the_fronts_error_event() -> None:
    exchange = _exchange("/v1/responses")
    writer = rs_res.ResponseStream("m", rs_req.echo_of({}))
    transform = FrontTransform(exchange, True, lambda o: o, writer)
    _ndjson(transform)
    line = b'{"model":"m","created_at":"x","message":{"role":"assistant","content":"Hi"},"done":false}\n'
    assert b"response.output_text.delta" in transform.feed(line)
    tail = transform.feed(b"not json\n")
    assert tail.startswith(b"event: error\n")
    assert b"event: response.failed\n" in tail
    assert exchange.outcome is TaskState.FAILED and exchange.stream_broken
    assert transform.feed(line) == b""  # nothing after the end


def test_a_backend_dying_mid_stream_gets_the_fronts_last_words() -> None:
    transform = FrontTransform(
        _exchange("/v1/messages"), True, lambda o: o, an_res.MessageStream("m")
    )
    _ndjson(transform)
    words = transform.last_words("backend died")
    assert words == an_res.error_event("backend died")


def test_a_complete_stream_has_nothing_more_to_say() -> None:
    transform = FrontTransform(
        _exchange("/v1/messages"), True, lambda o: o, an_res.MessageStream("m")
    )
    _ndjson(transform)
    final = b'{"model":"m","created_at":"x","message":{"role":"assistant","content":""},'
    transform.feed(final + b'"done":true,"done_reason":"stop"}\n')
    assert transform.last_words("gone after the end") == b""


def test_a_whole_answer_has_no_last_words_of_its_own() -> None:
    transform = FrontTransform(
        _exchange("/v1/messages"), True, lambda o: o, an_res.MessageStream("m")
    )
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": "application/json"})))
    assert transform.last_words("x") is None


def _sse(*chunks: dict[str, Any]) -> list[bytes]:
    return [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]


def _call_chunk(index: int, arguments: str, name: str = "") -> dict[str, Any]:
    fn: dict[str, Any] = {"arguments": arguments}
    call: dict[str, Any] = {"index": index, "function": fn}
    if name:
        call["id"], fn["name"] = f"call_{index}", name
    return {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}


def _responses_over_openai(pieces: list[bytes]) -> tuple[Any, bytes]:
    exchange = _exchange("/v1/responses")
    writer = rs_res.ResponseStream("m", rs_req.echo_of({}))
    transform = FrontTransform(exchange, False, lambda o: o, writer)
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": "text/event-stream"})))
    out = b"".join(transform.feed(p) for p in pieces) + transform.end()
    return exchange, out


def test_tool_calls_one_after_another_are_passed_on_as_they_come() -> None:
    pieces = _sse(_call_chunk(0, '{"a":', "f"), _call_chunk(0, " 1}"), _call_chunk(1, "{}", "g"))
    exchange, out = _responses_over_openai([*pieces, b"data: [DONE]\n\n"])
    assert out.count(b"event: response.function_call_arguments.delta") == 3
    assert out.count(b"event: response.output_item.done") == 2
    assert b"event: response.completed" in out and exchange.outcome is not TaskState.FAILED


def test_a_tool_call_that_goes_on_after_the_next_began_fails_the_stream() -> None:
    pieces = _sse(_call_chunk(0, "{", "f"), _call_chunk(1, "{}", "g"), _call_chunk(0, "}"))
    exchange, out = _responses_over_openai([*pieces, b"data: [DONE]\n\n"])
    assert b"event: response.completed" not in out
    assert out.endswith(b"\n\n") and b"event: response.failed" in out
    assert b"interleaved" in out
    assert exchange.outcome is TaskState.FAILED


def _text_deltas(out: bytes) -> list[str]:
    return [
        json.loads(event.split(b"data: ", 1)[1])["delta"]["text"]
        for event in out.split(b"\n\n")
        if event.startswith(b"event: content_block_delta\n")
    ]


@pytest.mark.parametrize("ollama", [True, False])
def test_a_read_of_text_pieces_becomes_the_fronts_deltas_in_order(ollama: bool) -> None:
    transform = FrontTransform(
        _exchange("/v1/messages"), ollama, lambda o: o, an_res.MessageStream("m")
    )
    kind = "application/x-ndjson" if ollama else "text/event-stream"
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": kind})))
    texts = ["first", "a", 'say "hi"', "\\", "é"]

    def piece(text: str) -> bytes:
        if ollama:
            message = {"role": "assistant", "content": text}
            obj = {"model": "m", "created_at": "x", "message": message, "done": False}
            return json.dumps(obj, separators=(",", ":")).encode() + b"\n"
        chunk = {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
        return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"

    out = transform.feed(piece(texts[0]))
    block = b"".join(piece(text) for text in texts[1:])
    assert transform.text_block(block.rstrip(b"\n")) is not None  # taken as a whole
    out += transform.feed(block)
    assert _text_deltas(out) == texts


def _text_reads(ollama: bool, texts: list[str]) -> bytes:
    if ollama:
        head = b'{"model":"m","created_at":"x","message":{"role":"assistant","content":'
        return b"".join(head + json.dumps(t).encode() + b'},"done":false}\n' for t in texts)
    return b"".join(
        _sse(*[{"id": "c", "choices": [{"index": 0, "delta": {"content": t}}]} for t in texts])
    )


@pytest.mark.parametrize("ollama", [True, False])
@pytest.mark.parametrize("front", ["/v1/messages", "/v1/responses"])
def test_a_read_of_texts_gives_the_same_deltas_in_c_and_one_by_one(
    ollama: bool, front: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(an_res, "new_id", lambda prefix: prefix + "1")
    monkeypatch.setattr(rs_res, "new_id", lambda prefix: prefix + "1")
    final = {"model": "m", "created_at": "x", "message": {"role": "assistant", "content": ""}}

    def run(compiled: Any) -> bytes:
        monkeypatch.setattr(textpath, "reframe", compiled)
        writer: Any = (
            an_res.MessageStream("m")
            if front == "/v1/messages"
            else rs_res.ResponseStream("m", rs_req.echo_of({}))
        )
        transform = FrontTransform(_exchange(front), ollama, lambda o: o, writer)
        kind = "application/x-ndjson" if ollama else "text/event-stream"
        transform.head(ResponseHead(200, CIMultiDict({"Content-Type": kind})))
        transform.feed(_text_reads(ollama, ["Hi"]))  # opens the text block or item
        out = transform.feed(_text_reads(ollama, [" there", ", caf\u00e9", ' "q"']))
        out += writer.feed({**final, "done": True, "done_reason": "stop"})
        return out

    c = run(textpath.reframe)
    assert c == run(None)
    if front == "/v1/messages":
        assert c.count(b'"type": "text_delta"') == 3
    else:  # its deltas numbered in turn, and the whole text at the end
        assert c.count(b"event: response.output_text.delta\n") == 3
        assert b'"text": "Hi there, caf\\u00e9 \\"q\\""' in c


@given(st.text(), st.text())
def test_a_json_template_filled_in_gives_what_json_dumps_gives(first: str, second: str) -> None:
    def build(a: str, b: str) -> dict[str, Any]:
        return {"a": a, "rest": [{"b": b, "share": "100%"}], "n": 1.5}

    template = json_template(build("\x01", "\x02"), "\x01", "\x02")
    filled = template % (json_string(first).encode(), json_string(second).encode())
    assert filled == json.dumps(build(first, second)).encode()


@pytest.mark.parametrize("writer", ["messages", "responses"])
def test_a_streams_templated_events_carry_odd_names_and_texts_as_they_are(writer: str) -> None:
    model, text = 'm "100%" é', 'say "hi" 50% \\ é'
    stream: Any = (
        an_res.MessageStream(model)
        if writer == "messages"
        else rs_res.ResponseStream(model, rs_req.echo_of({"metadata": {"output": []}}))
    )
    out = stream.text_raw(json.dumps(text).encode())
    out += stream.feed({"message": {"role": "assistant", "content": ""}, "done": True})
    events = [json.loads(line[6:]) for line in out.split(b"\n") if line.startswith(b"data: ")]
    if writer == "messages":
        assert events[0]["message"]["model"] == model
        assert events[0]["message"]["id"] == stream.id
    else:
        final = events[-1]["response"]
        assert final["model"] == model
        assert final["metadata"] == {"output": []}
        assert final["output"][0]["content"][0]["text"] == text
        assert [e["sequence_number"] for e in events] == list(range(len(events)))
