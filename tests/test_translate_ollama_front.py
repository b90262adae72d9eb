"""Rules for an Ollama client over an OpenAI-compatible backend, one test per rule (pure
functions and the stream transform, with real request/response shapes)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.errors import GatewayError
from ollamux.exchange import ResponseHead
from ollamux.plugins.translate import ollama_to_openai_request as req
from ollamux.plugins.translate import openai_to_ollama_response as res
from ollamux.plugins.translate.stream import OpenAIToOllama

MODEL = "qwen2.5-7b"
USER = {"role": "user", "content": "hi"}
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"


def chat(**extra: Any) -> dict[str, Any]:
    return req.chat_request({"model": MODEL, "messages": [USER], **extra})


# --- requests -------------------------------------------------------------------------


def test_stream_absent_means_streaming_with_usage() -> None:
    out = chat()
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_stream_false_asks_for_one_answer() -> None:
    out = chat(stream=False)
    assert out["stream"] is False and "stream_options" not in out


def test_num_predict_becomes_max_tokens() -> None:
    assert chat(options={"num_predict": 12})["max_tokens"] == 12


def test_unlimited_num_predict_sends_no_limit() -> None:
    assert "max_tokens" not in chat(options={"num_predict": -1})


def test_options_get_their_openai_names_and_others_are_dropped() -> None:
    out = chat(
        options={
            "temperature": 0.1,
            "top_p": 0.8,
            "seed": 3,
            "stop": ["\n"],
            "frequency_penalty": 0.2,
            "presence_penalty": 0.3,
            "top_k": 40,
            "num_ctx": 8192,
        }
    )
    assert {
        k: out[k] for k in out if k not in ("model", "messages", "stream", "stream_options")
    } == {
        "temperature": 0.1,
        "top_p": 0.8,
        "seed": 3,
        "stop": ["\n"],
        "frequency_penalty": 0.2,
        "presence_penalty": 0.3,
    }


def test_format_json_becomes_json_object() -> None:
    assert chat(format="json")["response_format"] == {"type": "json_object"}


def test_format_schema_becomes_json_schema() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert chat(format=schema)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema},
    }


@pytest.mark.parametrize(("think", "effort"), [(True, "medium"), ("low", "low"), ("high", "high")])
def test_think_becomes_reasoning_effort(think: Any, effort: str) -> None:
    assert chat(think=think)["reasoning_effort"] == effort


def test_think_false_sends_no_effort() -> None:
    assert "reasoning_effort" not in chat(think=False)


def test_images_become_image_url_parts_with_data_uris() -> None:
    out = req.chat_request(
        {"model": MODEL, "messages": [{"role": "user", "content": "what?", "images": [PNG]}]}
    )
    assert out["messages"][0]["content"] == [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
    ]


def test_tool_history_gets_ids_and_json_string_arguments() -> None:
    out = chat(
        messages=[
            USER,
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "f", "arguments": {"x": 1}}},
                    {"function": {"name": "g", "arguments": {}}},
                ],
            },
            {"role": "tool", "tool_name": "g", "content": "from g"},
            {"role": "tool", "tool_name": "f", "content": "from f"},
        ]
    )
    assistant, tool_g, tool_f = out["messages"][1:]
    assert assistant["content"] is None
    f_call, g_call = assistant["tool_calls"]
    assert f_call["function"] == {"name": "f", "arguments": '{"x": 1}'}
    assert f_call["type"] == "function"
    assert tool_g["tool_call_id"] == g_call["id"]
    assert tool_f["tool_call_id"] == f_call["id"]


def test_tools_pass_through() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert chat(tools=tools)["tools"] == tools


def test_generate_becomes_chat_with_system_and_user() -> None:
    out = req.generate_request({"model": MODEL, "prompt": "hi", "system": "terse", "stream": False})
    assert out == {
        "model": MODEL,
        "messages": [{"role": "system", "content": "terse"}, {"role": "user", "content": "hi"}],
        "stream": False,
    }


def test_raw_or_suffixed_generate_uses_completions() -> None:
    assert req.uses_completions({"raw": True}) and req.uses_completions({"suffix": "}"})
    out = req.generate_request({"model": MODEL, "prompt": "def f(", "suffix": "}", "stream": False})
    assert out == {"model": MODEL, "prompt": "def f(", "suffix": "}", "stream": False}


def test_legacy_embeddings_prompt_becomes_input() -> None:
    out = req.embed_request({"model": MODEL, "prompt": "x"}, legacy=True)
    assert out == {"model": MODEL, "input": "x", "encoding_format": "float"}


def test_bad_think_value_is_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        chat(think="ultra")
    assert (info.value.status, info.value.param) == (400, "think")


def test_think_max_asks_for_high_effort() -> None:
    assert chat(think="max")["reasoning_effort"] == "high"


# --- responses --------------------------------------------------------------------------


def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


def test_text_chunks_become_ndjson_message_lines() -> None:
    line = res.ChatStream(MODEL).feed(chunk({"content": "Hi"}))[0]
    assert line["model"] == MODEL and line["done"] is False
    assert line["message"] == {"role": "assistant", "content": "Hi"}
    assert line["created_at"].endswith("Z")


def test_empty_role_chunk_emits_nothing() -> None:
    assert res.ChatStream(MODEL).feed(chunk({"role": "assistant", "content": ""})) == []


def test_reasoning_content_becomes_thinking() -> None:
    line = res.ChatStream(MODEL).feed(chunk({"reasoning_content": "hmm"}))[0]
    assert line["message"]["thinking"] == "hmm"


def test_tool_call_fragments_are_buffered_by_index_and_sent_whole() -> None:
    stream = res.ChatStream(MODEL)
    frags = [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "f", "arguments": '{"ci'},
        },
        {
            "index": 1,
            "id": "call_b",
            "type": "function",
            "function": {"name": "g", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": 'ty": "Paris"}'}},
        {"index": 1, "function": {"arguments": "{}"}},
    ]
    for frag in frags:
        assert stream.feed(chunk({"tool_calls": [frag]})) == []
    stream.feed(chunk({}, "tool_calls"))
    calls_line, final = stream.finish_stream()
    assert calls_line["message"]["tool_calls"] == [
        {"id": "call_a", "function": {"index": 0, "name": "f", "arguments": {"city": "Paris"}}},
        {"id": "call_b", "function": {"index": 1, "name": "g", "arguments": {}}},
    ]
    assert final["done_reason"] == "stop"


def test_exactly_one_final_line_with_counts() -> None:
    stream = res.ChatStream(MODEL)
    stream.feed(chunk({"content": "x"}, "length"))
    stream.feed(chunk({}, None, usage=USAGE) | {"choices": []})
    final = stream.finish_stream()
    assert len(final) == 1 and final[0]["done"] is True
    assert final[0]["done_reason"] == "length"
    assert (final[0]["prompt_eval_count"], final[0]["eval_count"]) == (5, 3)
    assert {"total_duration", "load_duration", "prompt_eval_duration", "eval_duration"} <= set(
        final[0]
    )
    assert stream.finish_stream() == []


_CLOCKED = ("created_at", "total_duration", "eval_duration")


@pytest.mark.parametrize("generate", [False, True])
@pytest.mark.parametrize("model", [MODEL, 'q"uo\\te', "modèle"])
@pytest.mark.parametrize("finish", ["stop", "length", "content_filter", None])
@pytest.mark.parametrize("usage", [USAGE, None])
def test_last_line_is_the_final_object_finish_stream_gives_as_json_dumps_writes_it(
    generate: bool, model: str, finish: str | None, usage: dict[str, int] | None
) -> None:
    fast, general = res.ChatStream(model, generate), res.ChatStream(model, generate)
    for stream in (fast, general):
        stream.feed(chunk({"content": "x"}, finish, usage=usage))
    line = fast.last_line()
    assert line is not None and line.endswith(b"\n")
    obj = json.loads(line)
    assert json.dumps(obj).encode() + b"\n" == line
    (final,) = general.finish_stream()
    assert {k: v for k, v in obj.items() if k not in _CLOCKED} == {
        k: v for k, v in final.items() if k not in _CLOCKED
    }
    assert fast.counts["prompt_eval_count"] == obj["prompt_eval_count"]
    assert fast.done and fast.last_line() is None


def test_last_line_leaves_gathered_tool_calls_to_finish_stream() -> None:
    stream = res.ChatStream(MODEL)
    frag = {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}
    stream.feed(chunk({"tool_calls": [frag]}, "tool_calls"))
    assert stream.last_line() is None and not stream.done
    assert len(stream.finish_stream()) == 2


def test_generate_stream_lines_carry_response() -> None:
    line = res.ChatStream(MODEL, generate=True).feed(chunk({"content": "x"}))[0]
    assert line["response"] == "x" and "message" not in line


def test_whole_chat_answer_is_one_object() -> None:
    whole = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":1}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": USAGE,
    }
    out = res.chat_response(whole, MODEL, 42)
    assert out["message"] == {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}],
    }
    assert out["done"] is True and out["done_reason"] == "stop"
    assert out["created_at"] == "2023-11-14T22:13:20Z"
    assert (out["prompt_eval_count"], out["eval_count"], out["total_duration"]) == (5, 3, 42)


def test_text_completion_becomes_generate_answer() -> None:
    whole = {"choices": [{"index": 0, "text": "abc", "finish_reason": "length"}], "usage": USAGE}
    out = res.generate_response(whole, MODEL)
    assert (out["response"], out["done_reason"]) == ("abc", "length")


def test_models_become_tags_ps_and_show() -> None:
    models = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 1700000000}]}
    tags = res.tags_response(models)["models"][0]
    assert (tags["name"], tags["model"], tags["modified_at"]) == (
        MODEL,
        MODEL,
        "2023-11-14T22:13:20Z",
    )
    assert res.ps_response(models)["models"][0]["name"] == MODEL
    assert res.show_response(models, MODEL) is not None
    assert res.show_response(models, "other") is None


# --- the stream transform ---------------------------------------------------------------


def _exchange() -> Any:
    return SimpleNamespace(dialect=Dialect.OLLAMA, usage={}, error="", outcome=None, state={})


def _transform(exchange: Any, status: int = 200, ct: str = "text/event-stream") -> OpenAIToOllama:
    t = OpenAIToOllama(exchange, lambda o: res.chat_response(o, MODEL), res.ChatStream(MODEL))
    head = t.head(ResponseHead(status, CIMultiDict({"Content-Type": ct})))
    assert head.headers["Content-Type"] == (
        "application/x-ndjson" if status < 400 and ct == "text/event-stream" else "application/json"
    )
    return t


def _sse(*objs: Any) -> bytes:
    return b"".join(
        b"data: " + (o if isinstance(o, bytes) else json.dumps(o).encode()) + b"\n\n" for o in objs
    )


def test_sse_split_across_reads_becomes_ndjson_with_one_done_line() -> None:
    ex = _exchange()
    t = _transform(ex)
    body = _sse(
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({}, "stop"),
        {**chunk({}), "choices": [], "usage": USAGE},
        b"[DONE]",
    )
    out = b"".join(t.feed(body[i : i + 5]) for i in range(0, len(body), 5)) + t.end()
    lines = [json.loads(x) for x in out.splitlines()]
    assert "".join(x["message"]["content"] for x in lines) == "Hello"
    assert [x["done"] for x in lines] == [False, False, True]
    assert ex.usage == {"prompt_tokens": 5, "completion_tokens": 3}


def test_stream_without_done_marker_ends_with_an_error_line_not_a_done_line() -> None:
    ex = _exchange()
    t = _transform(ex)
    out = t.feed(_sse(chunk({"content": "x"}), chunk({}, "stop"))) + t.end()
    lines = [json.loads(x) for x in out.splitlines()]
    assert "[DONE]" in lines[-1]["error"]
    assert not any(x.get("done") for x in lines)
    assert ex.stream_broken is True


def test_mid_stream_error_event_becomes_an_error_line_then_the_end() -> None:
    ex = _exchange()
    t = _transform(ex)
    out = t.feed(_sse(chunk({"content": "x"}), {"error": {"message": "overloaded"}}))
    out += t.feed(_sse(chunk({"content": "y"}))) + t.end()
    lines = [json.loads(x) for x in out.splitlines()]
    assert lines[-1] == {"error": "overloaded"}
    assert not any(x.get("done") for x in lines)
    assert ex.stream_broken is True


def test_error_status_keeps_status_and_becomes_ollama_error() -> None:
    t = _transform(_exchange(), 401, "application/json")
    out = t.feed(b'{"error": {"message": "bad key", "type": "authentication_error"}}') + t.end()
    assert json.loads(out) == {"error": "bad key"}


@pytest.mark.parametrize("generate", [False, True])
def test_text_fast_path_writes_the_same_line_as_the_general_path(generate: bool) -> None:
    stream = res.ChatStream(MODEL, generate=generate)
    line = stream.content_line(chunk({"content": 'say "hi"\n', "role": None}))
    assert line is not None and line.endswith(b"\n")
    assert json.loads(line) == stream.feed(chunk({"content": 'say "hi"\n'}))[0]
    assert stream.content_line(chunk({"content": "x", "reasoning_content": "y"})) is None
    assert stream.content_line(chunk({"content": "x"}, "stop")) is None


def _compact(obj: Any) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def test_a_chunk_shaped_like_the_last_text_chunk_is_converted_from_its_bytes() -> None:
    stream = res.ChatStream(MODEL)
    first = _compact(chunk({"content": "Hi"}))
    assert stream.content_lines_raw(first) is None  # nothing learnt yet
    stream.content_line(chunk({"content": "Hi"}), first)
    line = stream.content_lines_raw(_compact(chunk({"content": 'é "quoted"\n'})))
    assert line is not None
    assert json.loads(line)["message"] == {"role": "assistant", "content": 'é "quoted"\n'}
    assert json.loads(line) == stream.feed(chunk({"content": 'é "quoted"\n'}))[0]


@pytest.mark.parametrize(
    "middle",
    [
        b'"a","role":"x"',  # two strings where one was: another shape
        b'""',  # empty text: nothing to send
        b"null",
        b'"\xff"',  # not UTF-8
        b'"tab\there"',  # a control character: not JSON
    ],
)
def test_a_line_that_only_looks_like_the_learnt_shape_is_not_taken_raw(middle: bytes) -> None:
    stream = res.ChatStream(MODEL)
    learnt = _compact(chunk({"content": "Hi"}))
    stream.content_line(chunk({"content": "Hi"}), learnt)
    head, _, tail = learnt.partition(b'"Hi"')
    assert stream.content_lines_raw(head + middle + tail) is None


def test_a_key_named_content_elsewhere_teaches_no_shape() -> None:
    stream = res.ChatStream(MODEL)
    obj = chunk({"content": "Hi"})
    obj["choices"][0]["logprobs"] = {"content": []}
    line = _compact(obj)
    assert stream.content_line(obj, line) is not None
    assert stream.content_lines_raw(line) is None


def test_a_stream_of_compact_chunks_keeps_every_text_exactly() -> None:
    objs = [chunk({"role": "assistant", "content": ""})]
    objs += [chunk({"content": text}) for text in ("Hel", "lo", ' "w"', "\\", "\u00e9")]
    body = b"".join(_compact(o) + b"\n\n" for o in [*objs, chunk({}, "stop")]) + _sse(b"[DONE]")
    fast = _transform(_exchange())
    out = fast.feed(body) + fast.end()
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["message"]["content"] for x in lines[:-1]] == ["Hel", "lo", ' "w"', "\\", "\u00e9"]
    assert lines[-1]["done"] is True
    assert fast.stream.content_lines_raw(_compact(chunk({"content": "more"}))) is not None


def test_a_read_of_learnt_text_chunks_becomes_their_lines_in_order() -> None:
    stream = res.ChatStream(MODEL)
    stream.content_line(chunk({"content": "Hi"}), _compact(chunk({"content": "Hi"})))
    texts = ["a", 'say "hi"', "\\"]
    block = stream.content_lines_raw(b"\n\n".join(_compact(chunk({"content": t})) for t in texts))
    assert block is not None
    assert [json.loads(x)["message"]["content"] for x in block.splitlines()] == texts


@pytest.mark.parametrize(
    "odd",
    [
        b"event: error",
        _compact(chunk({}, "stop")),
        _compact(chunk({"content": ""})),
        b"data: [DONE]",
    ],
)
def test_a_read_holding_any_other_event_is_left_to_the_line_by_line_path(odd: bytes) -> None:
    stream = res.ChatStream(MODEL)
    stream.content_line(chunk({"content": "Hi"}), _compact(chunk({"content": "Hi"})))
    block = _compact(chunk({"content": "a"})) + b"\n\n" + odd
    assert stream.content_lines_raw(block) is None
    assert stream.content_lines_raw(b"\n") is None  # no event at all


def test_chunks_that_differ_beyond_their_text_stop_being_learnt_from() -> None:
    stream = res.ChatStream(MODEL)
    lines = [_compact(chunk({"content": "t"}, obfuscation=f"x{i}")) for i in range(20)]
    for line in lines:
        assert stream.content_lines_raw(line) is None  # each has a shape of its own
        stream.content_line(chunk({"content": "t"}), line)
    assert stream.content_lines_raw(lines[7]) is not None  # the last one learnt from
    assert stream.content_lines_raw(lines[19]) is None  # not looked at any more
