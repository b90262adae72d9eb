"""However a backend's stream is cut into reads, the client gets the same bytes."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.exchange import ResponseHead
from ollamux.plugins.translate import ollama_to_openai_response as to_openai
from ollamux.plugins.translate import openai_to_ollama_response as to_ollama
from ollamux.plugins.translate.stream import OllamaToOpenAI, OpenAIToOllama
from ollamux.transforms import ResponseTransform

WORDS = ["Hel", "lo", ' "wo', "rld\\", "\n", "ünï", "😀"]


def _ollama_body() -> bytes:
    lines = [
        {
            "model": "m",
            "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": w},
            "done": False,
        }
        for w in WORDS
    ]
    lines.append(
        {
            "model": "m",
            "created_at": "2025-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 3,
            "eval_count": 7,
        }
    )
    return b"".join(json.dumps(x, separators=(",", ":")).encode() + b"\n" for x in lines)


def _openai_body() -> bytes:
    def event(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    tool = {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a": '}}
    events = [event({"role": "assistant", "content": ""})]
    events += [event({"content": w}) for w in WORDS]
    events += [
        event({"tool_calls": [tool]}),
        event({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
    ]
    events += [event({}, "tool_calls"), b"data: [DONE]\n\n"]
    return b"".join(events)


def _run(t: ResponseTransform, ct: str, body: bytes, cuts: list[int]) -> bytes:
    t.head(ResponseHead(200, CIMultiDict({"Content-Type": ct})))
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    out = b"".join(t.feed(body[a:b]) for a, b in itertools.pairwise(points))
    return out + t.end()


def _exchange(dialect: Dialect) -> Any:
    return SimpleNamespace(dialect=dialect, usage={}, error="", outcome=None, state={})


def _sse_payloads(out: bytes) -> list[Any]:
    blocks = [b[6:] for b in out.decode().split("\n\n") if b.startswith("data: ")]
    return [b if b == "[DONE]" else json.loads(b) for b in blocks]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_ollama_to_openai_is_independent_of_read_boundaries(cuts: list[int]) -> None:
    body = _ollama_body()

    def convert(c: list[int]) -> list[Any]:
        stream = to_openai.ChatStream("m")
        t = OllamaToOpenAI(_exchange(Dialect.OPENAI), lambda o: o, stream)
        events = _sse_payloads(_run(t, "application/x-ndjson", body, c))
        for e in events:
            if isinstance(e, dict):
                e.pop("id"), e.pop("created")
        return events

    events = convert(cuts)
    assert events == convert([])
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == "".join(
        WORDS
    )
    assert events[-1] == "[DONE]"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_openai_to_ollama_is_independent_of_read_boundaries(cuts: list[int]) -> None:
    body = _openai_body()
    t = OpenAIToOllama(_exchange(Dialect.OLLAMA), lambda o: o, to_ollama.ChatStream("m"))
    lines = [json.loads(x) for x in _run(t, "text/event-stream", body, cuts).splitlines()]
    assert "".join(x["message"]["content"] for x in lines) == "".join(WORDS)
    assert [x["done"] for x in lines].count(True) == 1 and lines[-1]["done"]
    (call,) = [c for x in lines for c in x["message"].get("tool_calls", [])]
    assert call == {"id": "call_1", "function": {"index": 0, "name": "f", "arguments": {"a": 1}}}


def _mixed_ollama_body() -> bytes:
    """Reasoning and content in one line, a line with invalid UTF-8, tool calls."""
    head = b'{"model":"m","created_at":"2025-01-01T00:00:00Z","message":'
    lines = [
        head + b'{"role":"assistant","content":"","thinking":"hm\xc3\xa9"},"done":false}',
        head + b'{"role":"assistant","content":"a\xc3\xbc","thinking":"so"},"done":false}',
        head + b'{"role":"assistant","content":"b\xffc"},"done":false}',
        head + b'{"role":"assistant","content":"","tool_calls":[{"function":'
        b'{"name":"f","arguments":{"x":1}}}]},"done":false}',
        head + b'{"role":"assistant","content":""},"done":true,"done_reason":"stop"}',
    ]
    return b"\n".join(lines) + b"\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_mixed_lines_and_bad_utf8_are_independent_of_read_boundaries(cuts: list[int]) -> None:
    body = _mixed_ollama_body()

    def convert(c: list[int]) -> list[Any]:
        stream = to_openai.ChatStream("m")
        t = OllamaToOpenAI(_exchange(Dialect.OPENAI), lambda o: o, stream)
        events = _sse_payloads(_run(t, "application/x-ndjson", body, c))
        for e in events:
            if isinstance(e, dict):
                e.pop("id")
                for call in e["choices"][0]["delta"].get("tool_calls", []) if e["choices"] else []:
                    call.pop("id")
        return events

    events = convert(cuts)
    assert events == convert([])
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert [d.get("reasoning") for d in deltas[:3]] == ["hmé", "so", None]
    assert [d.get("content") for d in deltas[1:4]] == [None, "aü", "b\ufffdc"]
    assert events[-1] == "[DONE]"
