"""A read that holds a stream's first or last lines beside its text lines: the text lines
between still go through the fast path at once, and the client gets exactly what it gets
when every line comes in a read of its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.exchange import ResponseHead, TaskState
from ollamux.plugins.translate import anthropic_response as an_res
from ollamux.plugins.translate import ollama_to_openai_response as to_openai
from ollamux.plugins.translate import openai_to_ollama_response as to_ollama
from ollamux.plugins.translate import responses_request as rs_req
from ollamux.plugins.translate import responses_response as rs_res
from ollamux.plugins.translate.common import Lines, Unreadable
from ollamux.plugins.translate.stream import (
    FrontTransform,
    OllamaToOpenAI,
    OpenAIToOllama,
    Translating,
)

MODEL = "m"
TEXTS = ["Hel", "lo", ' "you"', "\\", "é", "!"]
# Members that differ between two runs of the same stream (random ids, clock times).
VOLATILE = frozenset({"id", "item_id", "created", "created_at", "total_duration", "eval_duration"})


def _ollama_line(text: str, **extra: Any) -> bytes:
    """A line as Ollama's server writes it (compact, its member order)."""
    message = {"role": "assistant", "content": text, **extra}
    obj = {"model": MODEL, "created_at": "2025-01-01T00:00:00Z", "message": message, "done": False}
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


_OLLAMA_FINAL = (
    b'{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant",'
    b'"content":""},"done_reason":"stop","done":true,"total_duration":9,'
    b'"prompt_eval_count":3,"eval_count":6,"eval_duration":5}\n'
)


def _openai_event(delta: dict[str, Any], finish: str | None = None) -> bytes:
    chunk = {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


_OPENAI_END = [
    _openai_event({}, "stop"),
    b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],'
    b'"usage":{"prompt_tokens":3,"completion_tokens":6,"total_tokens":9}}\n\n',
    b"data: [DONE]\n\n",
]


def _ollama_stream(middle: list[bytes] | None = None) -> list[bytes]:
    """Each line of an Ollama stream: its first text, ``middle`` (its other texts by
    default), its final line."""
    rest = [_ollama_line(t) for t in TEXTS[1:]] if middle is None else middle
    return [_ollama_line(TEXTS[0]), *rest, _OLLAMA_FINAL]


def _openai_stream(middle: list[bytes] | None = None) -> list[bytes]:
    first = [_openai_event({"role": "assistant", "content": ""}), _openai_event({"content": "Hel"})]
    rest = [_openai_event({"content": t}) for t in TEXTS[1:]] if middle is None else middle
    return [*first, *rest, *_OPENAI_END]


def _exchange(path: str) -> Any:
    return SimpleNamespace(
        path=path,
        dialect=Dialect.of_path(path),
        model=MODEL,
        error=None,
        outcome=TaskState.RUNNING,
        stream_broken=False,
        usage=None,
    )


def _started(transform: Translating, ollama: bool) -> Translating:
    kind = "application/x-ndjson" if ollama else "text/event-stream"
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": kind})))
    return transform


def _openai_client(ollama: bool) -> Translating:
    assert ollama
    ex = _exchange("/v1/chat/completions")
    return _started(OllamaToOpenAI(ex, lambda o: o, to_openai.ChatStream(MODEL)), True)


def _ollama_client(ollama: bool) -> Translating:
    assert not ollama
    ex = _exchange("/api/chat")
    return _started(OpenAIToOllama(ex, lambda o: o, to_ollama.ChatStream(MODEL)), False)


def _messages_client(ollama: bool) -> Translating:
    writer = an_res.MessageStream(MODEL)
    return _started(FrontTransform(_exchange("/v1/messages"), ollama, lambda o: o, writer), ollama)


def _responses_client(ollama: bool) -> Translating:
    writer = rs_res.ResponseStream(MODEL, rs_req.echo_of({}))
    return _started(FrontTransform(_exchange("/v1/responses"), ollama, lambda o: o, writer), ollama)


CLIENTS: list[tuple[str, Callable[[bool], Translating], bool]] = [
    ("openai client, ollama backend", _openai_client, True),
    ("ollama client, openai backend", _ollama_client, False),
    ("messages client, ollama backend", _messages_client, True),
    ("messages client, openai backend", _messages_client, False),
    ("responses client, ollama backend", _responses_client, True),
    ("responses client, openai backend", _responses_client, False),
]
IDS = [name for name, _, _ in CLIENTS]


def _without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def _received(out: bytes) -> list[Any]:
    """What the client reads: event names and JSON documents (ids and times left out)."""
    items: list[Any] = []
    for line in out.split(b"\n"):
        if line.startswith(b"data: "):
            data = line[6:]
            items.append(data.decode() if data == b"[DONE]" else json.loads(data))
        elif line.startswith(b"event:") or line.strip():
            items.append(line.decode() if line.startswith(b"event:") else json.loads(line))
    return _without_volatile(items)


def _one_read_each(make: Callable[[bool], Translating], ollama: bool, lines: list[bytes]) -> bytes:
    transform = make(ollama)
    return b"".join(transform.feed(line) for line in lines) + transform.end()


def _slow_lines(transform: Translating) -> list[bytes]:
    """Records the lines that ``transform`` converts one by one."""
    seen: list[bytes] = []
    line = transform.line

    def counted(data: bytes) -> bytes:
        if data.strip():
            seen.append(data)
        return line(data)

    transform.line = counted  # type: ignore[method-assign]
    return seen


def _stream(ollama: bool, odd: bool = False) -> list[bytes]:
    """Each line of a stream from the backend; ``odd``: with a line the fast paths do not
    take among its text lines."""
    if not odd:
        return _ollama_stream() if ollama else _openai_stream()
    if ollama:
        return _ollama_stream(
            [_ollama_line("a"), _ollama_line("", thinking="hmm"), _ollama_line("b")]
        )
    odd = _openai_event({"reasoning_content": "hmm"})
    return _openai_stream([_openai_event({"content": "a"}), odd, _openai_event({"content": "b"})])


@pytest.mark.parametrize("odd", [False, True], ids=["texts", "another line among the texts"])
@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_a_whole_stream_in_one_read_gives_what_a_read_per_line_gives(
    name: str, make: Callable[[bool], Translating], ollama: bool, odd: bool
) -> None:
    lines = _stream(ollama, odd)
    transform = make(ollama)
    at_once = transform.feed(b"".join(lines)) + transform.end()
    assert _received(at_once) == _received(_one_read_each(make, ollama, lines))


@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_the_text_lines_between_a_streams_first_and_last_lines_are_not_taken_one_by_one(
    name: str, make: Callable[[bool], Translating], ollama: bool
) -> None:
    lines = _stream(ollama)
    transform = make(ollama)
    slow = _slow_lines(transform)
    transform.feed(b"".join(lines))
    texts = [line for line in lines if any(json.dumps(t).encode() in line for t in TEXTS[1:])]
    assert slow and not set(slow) & {t.rstrip(b"\n") for t in texts}


@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_a_broken_last_line_in_a_read_of_texts_still_ends_the_stream_with_an_error(
    name: str, make: Callable[[bool], Translating], ollama: bool
) -> None:
    lines = _stream(ollama)
    lines = [*lines[:-3], b"data: {not json\n\n" if not ollama else b"{not json\n"]
    transform = make(ollama)
    out = transform.feed(b"".join(lines)) + transform.end()
    assert transform.exchange.outcome is TaskState.FAILED
    assert b"cannot be understood" in out
    assert _received(out)[:-1] == _received(_one_read_each(make, ollama, lines))[:-1]


# -- a read of whole lines: the shortcut gives what the parsing path gives --------------

ONE_READ_TEXTS = ["a", 'say "hi"', "\\", "é", "tab\there", "\u2028", "}\n{", '},"done":false}\n']


def _first_lines(ollama: bool) -> bytes:
    return _ollama_stream()[0] if ollama else b"".join(_openai_stream()[:2])


def _text_line(ollama: bool, text: str) -> bytes:
    return _ollama_line(text) if ollama else _openai_event({"content": text})


def _parsed_text_events(make: Callable[[bool], Translating], ollama: bool, text: str) -> Any:
    """What the client gets for ``text`` from the general path: its line parsed and its
    chunk built as a dict."""
    transform: Any = make(ollama)
    transform.feed(_first_lines(ollama))
    line = _text_line(ollama, text)
    return _without_volatile(transform.stream.feed(json.loads(line if ollama else line[6:])))


@pytest.mark.parametrize("text", ONE_READ_TEXTS)
@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS[:2], ids=IDS[:2])
def test_a_read_of_one_text_line_gives_what_parsing_it_gives(
    name: str, make: Callable[[bool], Translating], ollama: bool, text: str
) -> None:
    transform = make(ollama)
    slow = _slow_lines(transform)
    transform.feed(_first_lines(ollama))
    seen = len(slow)
    line = _text_line(ollama, text)
    assert _received(transform.feed(line)) == _parsed_text_events(make, ollama, text)
    assert len(slow) == seen  # taken by the shortcut


def _refused_by_the_shortcut(ollama: bool) -> list[tuple[str, bytes]]:
    if ollama:
        line = _ollama_line("x")
        return [
            ("a blank line between two texts", line + b"\n" + line),
            ("thinking between two texts", line + _ollama_line("", thinking="y") + line),
            ("a line break in a line's head", line.replace(b'"m",', b'"m",\n') + line),
            ("an error line before a text", b'{"error":"boom"}\n' + line),
            ("thinking", _ollama_line("", thinking="y")),
            ("empty text", _ollama_line("")),
            ("not UTF-8", line.replace(b'"x"', b'"\xff"')),
            ("UTF-8 broken before the text", line.replace(b'"m"', b'"\xff"')),
            ("a raw control character", line.replace(b'"x"', b'"\x01"')),
            ("no newline", line[:-1]),
        ]
    event = _openai_event({"content": "x"})
    return [
        ("a blank line too many between two events", event + b"\n" + event),
        ("a line break inside an event", event.replace(b'"x"', b'"x"\n') + event),
        ("two texts in one event", event[:-1] + event),
        ("reasoning between two texts", event + _openai_event({"reasoning_content": "y"}) + event),
        ("reasoning", _openai_event({"reasoning_content": "y"})),
        ("not UTF-8", event.replace(b'"x"', b'"\xff"')),
        ("a raw control character", event.replace(b'"x"', b'"\x01"')),
        ("one newline", event[:-1]),
        ("crlf", event[:-2] + b"\r\n\r\n"),
    ]


def _received_in(
    make: Callable[[bool], Translating], ollama: bool, reads: list[bytes]
) -> tuple[list[Any], list[bytes]]:
    """What the client gets when ``reads`` come after the stream's first lines and before
    its end; and the lines among them the transform took one by one."""
    tail = _ollama_stream()[-1] if ollama else b"".join(_OPENAI_END)
    transform = make(ollama)
    transform.feed(_first_lines(ollama))
    slow = _slow_lines(transform)
    out = b"".join(transform.feed(data) for data in [*reads, tail]) + transform.end()
    return _received(out), slow


def _two_reads(data: bytes) -> list[bytes]:
    """``data`` as its first five bytes, then the rest: not a read of whole lines."""
    return [data[:5], data[5:]]


@pytest.mark.parametrize("text", ONE_READ_TEXTS)
@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_a_read_of_one_text_line_is_taken_at_once_and_gives_what_two_reads_give(
    name: str, make: Callable[[bool], Translating], ollama: bool, text: str
) -> None:
    line = _text_line(ollama, text)
    got, slow = _received_in(make, ollama, [line])
    assert got == _received_in(make, ollama, _two_reads(line))[0]
    assert line.rstrip(b"\n") not in slow


class _CountedLines(Lines):
    """``Lines`` that count the reads they reassemble (the general path takes each)."""

    __slots__ = ("reads",)

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.reads = 0

    def block(self, data: bytes) -> bytes | None:
        self.reads += 1
        return super().block(data)


@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_a_read_of_several_text_lines_is_taken_at_once_and_gives_what_a_read_per_line_gives(
    name: str, make: Callable[[bool], Translating], ollama: bool
) -> None:
    lines = [_text_line(ollama, text) for text in ONE_READ_TEXTS]
    one, each = make(ollama), make(ollama)
    one.feed(_first_lines(ollama))
    each.feed(_first_lines(ollama))
    one.lines = counted = _CountedLines(one.lines.limit)
    got = one.feed(b"".join(lines))
    assert counted.reads == 0  # not reassembled: converted at once
    assert _received(got) == _received(b"".join(each.feed(line) for line in lines))


def test_an_event_of_the_learnt_length_but_other_bytes_is_not_taken_by_the_shortcut() -> None:
    transform = _ollama_client(False)
    slow = _slow_lines(transform)
    transform.feed(_first_lines(False))
    other = _openai_event({"content": "x"}).replace(b'"model":"m"', b'"model":"n"')
    transform.feed(_openai_event({"content": "x"}) + other)
    assert slow[-1] == other.rstrip(b"\n")


def test_a_text_line_with_two_messages_gives_the_last_as_json_does() -> None:
    line = _ollama_line("a").replace(
        b',"done"', b',"message":{"role":"assistant","content":"b"},"done"'
    )
    assert json.loads(line)["message"]["content"] == "b"
    transform = _openai_client(True)
    transform.feed(_first_lines(True))
    events = _received(transform.feed(line + line))
    assert [e["choices"][0]["delta"]["content"] for e in events] == ["b", "b"]


@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_a_read_the_shortcut_refuses_gives_what_the_same_bytes_give_in_other_reads(
    name: str, make: Callable[[bool], Translating], ollama: bool
) -> None:
    for what, data in _refused_by_the_shortcut(ollama):
        got = _received_in(make, ollama, [data])[0]
        assert got == _received_in(make, ollama, _two_reads(data))[0], what
        line_by_line = data.splitlines(keepends=True)
        assert got == _received_in(make, ollama, line_by_line)[0], what


@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_a_read_that_ends_a_line_begun_in_the_read_before_is_read_with_it(
    name: str, make: Callable[[bool], Translating], ollama: bool
) -> None:
    start = b'{"cut' if ollama else b"data: {cut"  # the start of a line...
    line = _text_line(ollama, "ab")  # ...ended by the bytes of a whole text line
    end = _OLLAMA_FINAL if ollama else b"".join(_OPENAI_END)
    split, joined = make(ollama), make(ollama)
    got = b"".join(split.feed(r) for r in [_first_lines(ollama), start, line, end])
    want = b"".join(joined.feed(r) for r in [_first_lines(ollama), start + line, end])
    assert _received(got + split.end()) == _received(want + joined.end())
    assert split.exchange.outcome == joined.exchange.outcome


@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_a_text_line_longer_than_the_line_limit_is_refused_in_one_read_too(
    name: str, make: Callable[[bool], Translating], ollama: bool
) -> None:
    transform = make(ollama)
    transform.feed(_first_lines(ollama))
    transform.lines.limit = 64
    line = _text_line(ollama, "x" * 100)
    out = transform.feed(line)
    assert b"longer than 64 bytes" in out
    assert transform.exchange.outcome is TaskState.FAILED


# -- a stream's first read: only what its first line says beyond its text is parsed --------


def _first_ollama_line(head: bytes, text: bytes = b'"Hi"') -> bytes:
    """A first text line whose members before ``message`` are ``head`` (with its ``{``)."""
    return head + b',"message":{"role":"assistant","content":' + text + b'},"done":false}\n'


def test_a_first_read_of_text_lines_gives_the_role_and_the_first_lines_time_at_once() -> None:
    first = _first_ollama_line(b'{"model":"m","created_at":"2025-01-01T00:00:00Z"}'[:-1])
    transform = _openai_client(True)
    counted = transform.lines = _CountedLines(transform.lines.limit)
    out = transform.feed(first + _ollama_line("a") + _ollama_line("b"))
    events = [json.loads(block[6:]) for block in out.split(b"\n\n") if block]
    assert counted.reads == 0  # not reassembled: converted at once
    assert [e["choices"][0]["delta"] for e in events] == [
        {"role": "assistant", "content": "Hi"},
        {"content": "a"},
        {"content": "b"},
    ]
    assert {e["created"] for e in events} == {1735689600}  # 2025-01-01T00:00:00Z
    assert len({e["id"] for e in events}) == 1


@pytest.mark.parametrize(
    "head",
    [
        b'{"model":"m" "created_at":"2025-01-01T00:00:00Z"',
        b'{"model":"m",',
        b"{",
        b'{"model":"m","created_at":"2025-01-01T00:00:00Z"}',
    ],
    ids=["no comma", "a comma too many", "no member", "a brace too many"],
)
def test_a_first_line_that_is_not_json_before_its_message_is_refused_as_it_is_alone(
    head: bytes,
) -> None:
    first = _first_ollama_line(head)
    with pytest.raises(ValueError):
        json.loads(first)
    with pytest.raises(Unreadable):
        _openai_client(True).feed(first)
    with pytest.raises(Unreadable):
        _openai_client(True).feed(first + _ollama_line("a"))


def test_an_error_member_in_a_first_text_line_fails_the_stream_as_when_it_is_parsed() -> None:
    first = _first_ollama_line(b'{"error":"boom","model":"m"')
    lines = [first, _ollama_line("a"), _OLLAMA_FINAL]
    transform = _openai_client(True)
    out = transform.feed(b"".join(lines)) + transform.end()
    assert _received(out) == _received(_one_read_each(_openai_client, True, lines))
    assert b"boom" in out
    assert transform.exchange.outcome is TaskState.FAILED


def test_a_first_read_of_a_comment_and_a_named_event_before_the_texts_gives_what_parsing_gives() -> (
    None
):
    lines = [b": keep-alive\n\n", b"event: message\n", *_openai_stream()]
    transform = _ollama_client(False)
    out = transform.feed(b"".join(lines)) + transform.end()
    assert _received(out) == _received(_one_read_each(_ollama_client, False, lines))
    assert b'"content":"Hel"' in out.replace(b" ", b"")


@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS[:2], ids=IDS[:2])
def test_a_last_read_of_texts_and_the_end_takes_its_texts_at_once(
    name: str, make: Callable[[bool], Translating], ollama: bool
) -> None:
    texts = [_text_line(ollama, text) for text in ONE_READ_TEXTS]
    end = [_OLLAMA_FINAL] if ollama else _OPENAI_END
    transform = make(ollama)
    out = transform.feed(_first_lines(ollama))
    slow = _slow_lines(transform)
    out += transform.feed(b"".join([*texts, *end])) + transform.end()
    assert [line for line in slow if line.strip()] == [e.rstrip(b"\n") for e in end]
    each = _one_read_each(make, ollama, [_first_lines(ollama), *texts, *end])
    assert _received(out) == _received(each)


@pytest.mark.parametrize("texts", [0, 1, 3], ids=["the end alone", "a text", "three texts"])
@pytest.mark.parametrize(("name", "make", "ollama"), CLIENTS, ids=IDS)
def test_a_last_read_of_whole_records_is_not_reassembled_line_by_line(
    name: str, make: Callable[[bool], Translating], ollama: bool, texts: int
) -> None:
    end = [_OLLAMA_FINAL] if ollama else _OPENAI_END
    last = [_text_line(ollama, "x")] * texts + end
    transform = make(ollama)
    out = transform.feed(_first_lines(ollama))
    transform.lines = counted = _CountedLines(transform.lines.limit)
    out += transform.feed(b"".join(last)) + transform.end()
    assert counted.reads == 0
    each = _one_read_each(make, ollama, [_first_lines(ollama), *last])
    assert _received(out) == _received(each)
