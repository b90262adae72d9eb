"""Wrong types and deep nesting in every field the Messages and Responses converters read:
never a 5xx. A request is translated (for either backend kind) or refused with a 4xx naming
a field; an answer line is rendered or raises ``BadUpstreamAnswer``."""

from __future__ import annotations

import contextlib
import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ollamux.dialect import Dialect
from ollamux.errors import GatewayError
from ollamux.plugins.translate import anthropic_request as an_req
from ollamux.plugins.translate import anthropic_response as an_res
from ollamux.plugins.translate import openai_to_ollama_request as oa_req
from ollamux.plugins.translate import responses_request as rs_req
from ollamux.plugins.translate import responses_response as rs_res
from ollamux.plugins.translate.common import ollama_extensions
from ollamux.plugins.translate.stream import FrontTransform
from ollamux.transforms import BadUpstreamAnswer
from tests.test_translate_fuzz import (
    A_CHUNK,
    A_PATHS,
    A_WHOLE,
    A_WHOLE_PATHS,
    O_FINAL,
    O_LINE,
    O_PATHS,
    Path,
    _exchange,
    _replace,
    _run,
    values,
)

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
MESSAGES = {
    "model": "m",
    "max_tokens": 10,
    "system": [{"type": "text", "text": "s"}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, IMAGE]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": ""},
                {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}},
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ],
    "stop_sequences": ["x"],
    "temperature": 0.5,
    "top_p": 0.5,
    "top_k": 3,
    "stream": True,
    "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "tool", "name": "f"},
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "output_config": {"effort": "low", "format": {"type": "json_schema", "schema": {}}},
    "metadata": {"user_id": "u"},
    "options": {"num_ctx": 4096},
    "keep_alive": "5m",
}
MESSAGES_PATHS: list[Path] = [
    *[(k,) for k in MESSAGES if k != "model"],
    ("system", 0),
    ("system", 0, "text"),
    ("messages", 0),
    ("messages", 0, "role"),
    ("messages", 0, "content"),
    ("messages", 0, "content", 0),
    ("messages", 0, "content", 0, "type"),
    ("messages", 0, "content", 0, "text"),
    ("messages", 0, "content", 1, "source"),
    ("messages", 0, "content", 1, "source", "type"),
    ("messages", 0, "content", 1, "source", "media_type"),
    ("messages", 0, "content", 1, "source", "data"),
    ("messages", 1, "content", 0, "thinking"),
    ("messages", 1, "content", 1, "id"),
    ("messages", 1, "content", 1, "name"),
    ("messages", 1, "content", 1, "input"),
    ("messages", 2, "content", 0, "tool_use_id"),
    ("messages", 2, "content", 0, "content"),
    ("messages", 2, "content", 0, "is_error"),
    ("tools", 0),
    ("tools", 0, "name"),
    ("tools", 0, "input_schema"),
    ("tools", 0, "description"),
    ("tool_choice", "type"),
    ("tool_choice", "name"),
    ("thinking", "type"),
    ("thinking", "budget_tokens"),
    ("output_config", "effort"),
    ("output_config", "format"),
    ("output_config", "format", "schema"),
]
RESPONSES = {
    "model": "m",
    "instructions": "s",
    "input": [
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "hi"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ],
    "max_output_tokens": 10,
    "temperature": 0.5,
    "top_p": 0.5,
    "stream": True,
    "store": False,
    "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
    "tool_choice": {"type": "function", "name": "f"},
    "text": {"format": {"type": "json_schema", "name": "x", "schema": {}}},
    "reasoning": {"effort": "low"},
    "parallel_tool_calls": True,
    "metadata": {},
}
RESPONSES_PATHS: list[Path] = [
    *[(k,) for k in RESPONSES if k != "model"],
    ("previous_response_id",),
    ("background",),
    ("input", 0),
    ("input", 0, "role"),
    ("input", 0, "content"),
    ("input", 0, "content", 0),
    ("input", 0, "content", 0, "text"),
    ("input", 0, "content", 1, "image_url"),
    ("input", 1, "call_id"),
    ("input", 1, "name"),
    ("input", 1, "arguments"),
    ("input", 2, "output"),
    ("input", 2, "type"),
    ("tools", 0),
    ("tools", 0, "name"),
    ("tools", 0, "parameters"),
    ("tools", 0, "strict"),
    ("tool_choice", "name"),
    ("text", "format"),
    ("text", "format", "type"),
    ("text", "format", "schema"),
    ("reasoning", "effort"),
]


def _messages(body: dict[str, Any], ollama: bool) -> dict[str, Any]:
    chat = an_req.chat_request(body, ollama)
    return an_req.ollama_extras(body, oa_req.chat_request(chat)) if ollama else chat


def _responses(body: dict[str, Any], ollama: bool) -> dict[str, Any]:
    chat = rs_req.chat_request(body, ollama)
    return ollama_extensions(body, oa_req.chat_request(chat)) if ollama else chat


REQUESTS = [
    ("messages", _messages, MESSAGES, MESSAGES_PATHS),
    ("responses", _responses, RESPONSES, RESPONSES_PATHS),
]


def test_the_base_requests_translate() -> None:
    for _name, convert, base, _paths in REQUESTS:
        for ollama in (True, False):
            json.dumps(convert(copy.deepcopy(base), ollama))
    assert an_req.count_tokens(copy.deepcopy(MESSAGES)) > 0


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
    for ollama in (True, False):
        try:
            out = convert(copy.deepcopy(body), ollama)
        except GatewayError as err:
            assert 400 <= err.status < 500
            assert err.param, f"{path}: {err.message} names no field"
            continue
        json.dumps(out)
    if name == "messages":
        try:
            an_req.count_tokens(body)
        except GatewayError as err:
            assert err.status == 400


WRITERS = [
    ("messages", lambda: an_res.MessageStream("m"), lambda o: an_res.message(o, "m")),
    (
        "responses",
        lambda: rs_res.ResponseStream("m", rs_req.echo_of({})),
        lambda o: rs_res.response(o, "m", rs_req.echo_of({})),
    ),
]


@pytest.mark.parametrize(("name", "writer", "whole"), WRITERS, ids=[w[0] for w in WRITERS])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_wrong_types_in_an_answer_are_unreadable_or_rendered(
    name: str, writer: Any, whole: Any, data: Any
) -> None:
    path = data.draw(st.sampled_from(O_PATHS))
    value = data.draw(values)
    for base in (O_LINE, O_FINAL):
        obj = _replace(base, path, value)
        try:
            stream = writer()
            stream.feed(obj)
            stream.feed(O_FINAL)
        except BadUpstreamAnswer:
            pass
        with contextlib.suppress(BadUpstreamAnswer):
            json.dumps(whole(obj))


def _fronts(ollama: bool) -> list[FrontTransform]:
    out = []
    for path, _writer, whole in (
        ("/v1/messages", an_res.MessageStream, lambda o: an_res.message(o, "m")),
        ("/v1/responses", None, lambda o: rs_res.response(o, "m", rs_req.echo_of({}))),
    ):
        ex = _exchange(Dialect.of_path(path))
        ex.model = "m"
        ex.stream_broken = False
        writer = an_res.MessageStream("m") if _writer else rs_res.ResponseStream("m", {})
        out.append(FrontTransform(ex, ollama, whole, writer))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_wrong_types_in_a_backends_wire_answer_are_unreadable_or_rendered(data: Any) -> None:
    """Through the transforms, both backend kinds, streamed and whole: no other exception,
    and nothing given up once bytes went out (the stream's error event instead)."""
    line = _replace(O_LINE, data.draw(st.sampled_from(O_PATHS)), data.draw(values))
    chunk = _replace(A_CHUNK, data.draw(st.sampled_from(A_PATHS)), data.draw(values))
    whole = _replace(A_WHOLE, data.draw(st.sampled_from(A_WHOLE_PATHS)), data.draw(values))
    o_lines = [json.dumps(o).encode() + b"\n" for o in (O_LINE, line, O_FINAL)]
    a_events = [b"data: " + json.dumps(o).encode() + b"\n\n" for o in (A_CHUNK, chunk)]
    for transform in _fronts(True):
        _run(transform, "application/x-ndjson", o_lines)
    for transform in _fronts(True):
        _run(transform, "application/json", [json.dumps(line).encode()])
    for transform in _fronts(False):
        _run(transform, "text/event-stream", [*a_events, b"data: [DONE]\n\n"])
    for transform in _fronts(False):
        _run(transform, "application/json", [json.dumps(whole).encode()])
