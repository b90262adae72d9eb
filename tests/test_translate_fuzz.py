"""Wrong types and deep nesting in every field a translation reads: never a 5xx.

Requests: each converter either translates or refuses with a 4xx ``GatewayError`` (which
the core renders as a 400 naming the field); never another exception (a 500). Answers:
each transform either converts or raises ``BadUpstreamAnswer`` (a 502, or an error event
once the stream began); never another exception.
"""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.errors import GatewayError
from ollamux.exchange import ResponseHead
from ollamux.plugins.translate import ollama_to_openai_request as o2o_req
from ollamux.plugins.translate import ollama_to_openai_response as to_openai
from ollamux.plugins.translate import openai_to_ollama_request as oa_req
from ollamux.plugins.translate import openai_to_ollama_response as to_ollama
from ollamux.plugins.translate.stream import OllamaToOpenAI, OpenAIToOllama
from ollamux.transforms import BadUpstreamAnswer

Path = tuple[Any, ...]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def deep(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


values = junk | st.sampled_from(
    [deep(200), "ünï", "data:image/png;base64,ünï", -1, [], {}, [1], "abc"]
)


def _replace(body: dict[str, Any], path: Path, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(body)
    holder: Any = out
    for key in path[:-1]:
        holder = holder[key]
    holder[path[-1]] = value
    return out


CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
OA_CHAT = {
    "model": "m",
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [copy.deepcopy(CALL)]},
        {"role": "tool", "tool_call_id": "call_1", "name": "f", "content": "x"},
    ],
    "stream": True,
    "stream_options": {"include_usage": True},
    "max_tokens": 5,
    "stop": ["x"],
    "temperature": 0.5,
    "top_p": 0.5,
    "seed": 1,
    "frequency_penalty": 0.1,
    "presence_penalty": 0.1,
    "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "object"}}},
    "reasoning_effort": "low",
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "tool_choice": "auto",
    "n": 1,
}
OA_CHAT_PATHS: list[Path] = [
    *[(k,) for k in OA_CHAT if k != "model"],
    ("reasoning",),
    ("max_completion_tokens",),
    ("stream_options", "include_usage"),
    ("response_format", "type"),
    ("response_format", "json_schema"),
    ("response_format", "json_schema", "schema"),
    ("messages", 0),
    ("messages", 0, "role"),
    ("messages", 0, "content"),
    ("messages", 0, "content", 0),
    ("messages", 0, "content", 0, "type"),
    ("messages", 0, "content", 0, "text"),
    ("messages", 0, "reasoning"),
    ("messages", 1, "tool_calls"),
    ("messages", 1, "tool_calls", 0),
    ("messages", 1, "tool_calls", 0, "id"),
    ("messages", 1, "tool_calls", 0, "function"),
    ("messages", 1, "tool_calls", 0, "function", "name"),
    ("messages", 1, "tool_calls", 0, "function", "arguments"),
    ("messages", 2, "tool_call_id"),
    ("messages", 2, "name"),
    ("tools", 0),
]
OA_COMPLETION = {"model": "m", "prompt": "x", "suffix": "y", "stream": False, "max_tokens": 3}
OA_COMPLETION_PATHS: list[Path] = [
    *[(k,) for k in OA_COMPLETION if k != "model"],
    ("stop",),
    ("top_p",),
    ("n",),
    ("stream_options",),
]
OA_EMBED = {"model": "m", "input": ["a"], "encoding_format": "float", "dimensions": 3}
OA_EMBED_PATHS: list[Path] = [("input",), ("encoding_format",), ("dimensions",), ("input", 0)]

OL_CHAT = {
    "model": "m",
    "messages": [
        {"role": "user", "content": "hi", "images": ["iVBORw0KGgo="]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": {}}}],
        },
        {"role": "tool", "tool_name": "f", "content": "x"},
    ],
    "options": {"temperature": 0.5, "num_predict": 4, "stop": ["x"], "seed": 1, "top_p": 1},
    "format": "json",
    "think": "low",
    "tools": [{"type": "function", "function": {"name": "f"}}],
    "stream": True,
    "keep_alive": "5m",
}
OL_CHAT_PATHS: list[Path] = [
    *[(k,) for k in OL_CHAT if k != "model"],
    ("messages", 0),
    ("messages", 0, "role"),
    ("messages", 0, "content"),
    ("messages", 0, "images"),
    ("messages", 0, "images", 0),
    ("messages", 1, "tool_calls"),
    ("messages", 1, "tool_calls", 0),
    ("messages", 1, "tool_calls", 0, "function"),
    ("messages", 1, "tool_calls", 0, "function", "name"),
    ("messages", 1, "tool_calls", 0, "function", "arguments"),
    ("messages", 2, "tool_name"),
    ("options", "temperature"),
    ("options", "num_predict"),
    ("options", "stop"),
    ("options", "seed"),
    ("options", "top_p"),
]
OL_GENERATE = {
    "model": "m",
    "prompt": "hi",
    "system": "s",
    "images": ["iVBORw0KGgo="],
    "raw": False,
    "options": {},
}
OL_GENERATE_PATHS: list[Path] = [
    *[(k,) for k in OL_GENERATE if k != "model"],
    ("suffix",),
    ("format",),
    ("think",),
]
OL_EMBED = {"model": "m", "input": ["a"], "dimensions": 3, "truncate": True}
OL_EMBED_PATHS: list[Path] = [("input",), ("dimensions",), ("truncate",), ("input", 0)]

REQUESTS = [
    ("openai chat", lambda b: oa_req.chat_request(b), OA_CHAT, OA_CHAT_PATHS),
    ("openai completion", oa_req.completion_request, OA_COMPLETION, OA_COMPLETION_PATHS),
    ("openai embeddings", oa_req.embedding_request, OA_EMBED, OA_EMBED_PATHS),
    ("ollama chat", o2o_req.chat_request, OL_CHAT, OL_CHAT_PATHS),
    ("ollama generate", o2o_req.generate_request, OL_GENERATE, OL_GENERATE_PATHS),
    ("ollama embed", o2o_req.embed_request, OL_EMBED, OL_EMBED_PATHS),
]


def test_the_base_requests_translate() -> None:
    for _name, convert, base, _paths in REQUESTS:
        json.dumps(convert(copy.deepcopy(base)))


@pytest.mark.parametrize(
    ("name", "convert", "base", "paths"), REQUESTS, ids=[r[0] for r in REQUESTS]
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_wrong_types_in_a_request_are_a_4xx_or_translated(
    name: str, convert: Any, base: dict[str, Any], paths: list[Path], data: Any
) -> None:
    path = data.draw(st.sampled_from(paths))
    body = _replace(base, path, data.draw(values))
    try:
        out = convert(body)
    except GatewayError as err:
        assert 400 <= err.status < 500
        assert err.param, f"{path}: {err.message} names no field"
        return
    json.dumps(out)  # what goes to the backend can be written


# --- answers ---------------------------------------------------------------------------


def _exchange(dialect: Dialect) -> Any:
    return SimpleNamespace(dialect=dialect, usage={}, error="", outcome=None, state={})


O_LINE = {
    "model": "m",
    "created_at": "2025-01-01T00:00:00Z",
    "message": {
        "role": "assistant",
        "content": "a",
        "thinking": "t",
        "tool_calls": [{"function": {"name": "f", "arguments": {}}}],
    },
    "done": False,
}
O_FINAL = {**O_LINE, "done": True, "done_reason": "stop", "prompt_eval_count": 1, "eval_count": 2}
O_PATHS: list[Path] = [
    ("message",),
    ("message", "content"),
    ("message", "thinking"),
    ("message", "tool_calls"),
    ("message", "tool_calls", 0),
    ("message", "tool_calls", 0, "function"),
    ("message", "tool_calls", 0, "function", "name"),
    ("created_at",),
    ("done",),
    ("done_reason",),
    ("prompt_eval_count",),
    ("eval_count",),
    ("response",),
    ("embeddings",),
]
A_CHUNK = {
    "choices": [
        {
            "index": 0,
            "delta": {
                "content": "a",
                "reasoning_content": "r",
                "tool_calls": [
                    {"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}
                ],
            },
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2},
}
A_PATHS: list[Path] = [
    ("choices",),
    ("choices", 0),
    ("choices", 0, "delta"),
    ("choices", 0, "delta", "content"),
    ("choices", 0, "delta", "reasoning_content"),
    ("choices", 0, "delta", "tool_calls"),
    ("choices", 0, "delta", "tool_calls", 0),
    ("choices", 0, "delta", "tool_calls", 0, "index"),
    ("choices", 0, "delta", "tool_calls", 0, "function"),
    ("choices", 0, "finish_reason"),
    ("usage",),
    ("usage", "prompt_tokens"),
    ("error",),
    ("data",),
]
A_WHOLE = {
    "created": 1,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "a"}, "text": "t"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 2},
    "data": [{"index": 0, "embedding": [0.5]}],
}
A_WHOLE_PATHS: list[Path] = [
    ("created",),
    ("choices",),
    ("choices", 0),
    ("choices", 0, "message"),
    ("choices", 0, "message", "content"),
    ("choices", 0, "text"),
    ("usage",),
    ("usage", "completion_tokens"),
    ("data",),
    ("data", 0),
    ("data", 0, "embedding"),
    ("data", 0, "index"),
]


def _run(transform: Any, content_type: str, pieces: list[bytes]) -> bytes:
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": content_type})))
    out = b""
    try:
        for piece in pieces:
            out += transform.feed(piece)
        out += transform.end()
    except BadUpstreamAnswer:
        assert not out, "a transform gave up after bytes went out"
    return out


def _ollama_transforms() -> list[Any]:
    ex = _exchange(Dialect.OPENAI)
    return [
        OllamaToOpenAI(ex, lambda o: to_openai.chat_completion(o, "m"), to_openai.ChatStream("m")),
        OllamaToOpenAI(
            ex, lambda o: to_openai.text_completion(o, "m"), to_openai.CompletionStream("m", True)
        ),
        OllamaToOpenAI(
            ex, lambda o: to_openai.embedding_list(o, "m", "base64"), to_openai.ChatStream("m")
        ),
    ]


def _openai_transforms() -> list[Any]:
    ex = _exchange(Dialect.OLLAMA)
    return [
        OpenAIToOllama(ex, lambda o: to_ollama.chat_response(o, "m"), to_ollama.ChatStream("m")),
        OpenAIToOllama(
            ex, lambda o: to_ollama.generate_response(o, "m"), to_ollama.ChatStream("m", True)
        ),
        OpenAIToOllama(ex, lambda o: to_ollama.embed_response(o, "m"), to_ollama.ChatStream("m")),
    ]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(O_PATHS), values, st.booleans(), st.integers(0, 2))
def test_wrong_types_in_ollama_answers_never_escape(
    path: Path, value: Any, in_final: bool, which: int
) -> None:
    lines = [copy.deepcopy(O_LINE), copy.deepcopy(O_FINAL)]
    target = 1 if in_final else 0
    try:
        lines[target] = _replace(lines[target], path, value)
    except (KeyError, IndexError, TypeError):
        lines[target][path[0]] = value
    body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    _run(_ollama_transforms()[which], "application/x-ndjson", [body[:7], body[7:]])
    _run(_ollama_transforms()[which], "application/json", [json.dumps(lines[target]).encode()])


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(A_PATHS), values, st.integers(0, 2))
def test_wrong_types_in_openai_events_never_escape(path: Path, value: Any, which: int) -> None:
    first = {"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    event = _replace(A_CHUNK, path, value)
    body = b"".join(b"data: " + json.dumps(x).encode() + b"\n\n" for x in (first, event, A_CHUNK))
    out = _run(_openai_transforms()[which], "text/event-stream", [body, b"data: [DONE]\n\n"])
    for line in out.splitlines():
        assert isinstance(json.loads(line), dict)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(A_WHOLE_PATHS), values, st.integers(0, 2))
def test_wrong_types_in_whole_openai_answers_never_escape(
    path: Path, value: Any, which: int
) -> None:
    body = json.dumps(_replace(A_WHOLE, path, value)).encode()
    out = _run(_openai_transforms()[which], "application/json", [body])
    if out:
        assert isinstance(json.loads(out), dict)


@settings(max_examples=100, deadline=None)
@given(junk)
def test_any_json_as_a_whole_answer_is_converted_or_refused(value: Any) -> None:
    body = json.dumps(value).encode()
    for t in _ollama_transforms() + _openai_transforms():
        out = _run(t, "application/json", [body])
        if out:
            assert isinstance(json.loads(out), dict)
