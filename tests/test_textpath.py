"""The C helper (``_textpath``) re-frames a translated stream's reads exactly as the Python
steps do, whatever a read holds: same bytes, or both refuse (``None``)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ollamux.plugins.translate import ollama_to_openai_response as to_openai
from ollamux.plugins.translate import openai_to_ollama_response as to_ollama
from ollamux.plugins.translate import textpath

try:
    from ollamux.plugins.translate._textpath import reframe as compiled
except ImportError:  # installed without a C compiler: only Python's steps run (.ci/run checks)
    compiled = None

needs_c = pytest.mark.skipif(compiled is None, reason="the C helper is not built here")

NDJSON_HEAD = (
    b'{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":'
)
NDJSON_TAIL = b'},"done":false}'
SSE_HEAD = b'data: {"id":"c","choices":[{"index":0,"delta":{"content":'
SSE_TAIL = b'},"finish_reason":null}]}'

# Texts as servers write them, and bytes that are not quite that.
TAKEN = [
    b'"tok "',
    b'"caf\xc3\xa9 \xf0\x9f\x99\x82"',
    b'"\\u00e9\\ud83d\\ude42 \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t"',
    b'"\\ud800"',  # an escaped lone surrogate is a JSON string
    b'"\x7f"',
]
REFUSED = [
    b'""',  # empty: not a text piece
    b'"a"b"',
    b'"\\"',
    b'"\\x"',
    b'"\\u12g4"',
    b'"\\u12"',
    b'"\x01"',
    b'"\t"',
    b'"a\nb"',
    b'"\xed\xa0\x80"',  # an encoded surrogate: not UTF-8
    b'"\xc0\xaf"',  # overlong
    b'"\xff"',
    b'"\xc3"',
    b"tok",
    b'"tok',
    b"",
]
TRICKY = TAKEN + REFUSED
JUNK = [b"", b"\n", b"\n\n", b'"', b"\\", b"}", b'"done":false}', b"\xc3", b"data: "]


def _valid_texts() -> st.SearchStrategy[bytes]:
    escaped = st.text(min_size=1, max_size=12).map(lambda s: json.dumps(s).encode())
    raw = st.text(min_size=1, max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False).encode())
    return st.one_of(escaped, raw, st.sampled_from(TAKEN))


def _reads(head: bytes, tail: bytes, sep: bytes) -> st.SearchStrategy[bytes]:
    """Reads of records as a server writes them, about half of them spoiled: one record
    built of a wrong part, or a piece of junk put anywhere."""
    good = _valid_texts().map(lambda text: head + text + tail + sep)
    bad = st.tuples(
        st.sampled_from([b"", head[:9], head + b'"x"' + tail[:2] + head[-11:]]),
        st.sampled_from([head, head[:-1], b""]),
        st.one_of(_valid_texts(), st.sampled_from(REFUSED)),
        st.sampled_from([tail, tail[:-1], tail + b" "]),
        st.sampled_from([sep, b"\n", b"\n\n\n"]),
    ).map(b"".join)
    spoiler = st.one_of(
        st.none(),
        st.tuples(st.just("record"), st.integers(0, 5), bad),
        st.tuples(st.just("junk"), st.integers(0, 400), st.sampled_from(JUNK)),
    )

    def build(parts: tuple[list[bytes], tuple[str, int, bytes] | None]) -> bytes:
        records, spoil = parts
        if spoil is None:
            return b"".join(records)
        kind, at, piece = spoil
        if kind == "record":
            records[at % len(records)] = piece
            return b"".join(records)
        data = b"".join(records)
        at %= len(data) + 1
        return data[:at] + piece + data[at:]

    return st.tuples(st.lists(good, min_size=1, max_size=6), spoiler).map(build)


def _both(call: Callable[[], bytes | None]) -> tuple[bytes | None, bytes | None]:
    """What ``call`` gives with Python's steps, then with the C helper."""
    saved = textpath.reframe
    try:
        textpath.reframe = None
        python = call()
        textpath.reframe = compiled
        return python, call()
    finally:
        textpath.reframe = saved


def _openai_client_stream() -> to_openai.ChatStream:
    stream = to_openai.ChatStream("m")
    stream.role_sent, stream.created = True, 1
    stream._id = "chatcmpl-1"
    return stream


def _ollama_client_stream() -> to_ollama.ChatStream:
    stream = to_ollama.ChatStream("m")
    stream.learn(SSE_HEAD + b'"tok "' + SSE_TAIL, "tok ")
    assert stream.learnt
    return stream


@needs_c
@settings(max_examples=400, deadline=None)
@given(_reads(NDJSON_HEAD, NDJSON_TAIL, b"\n"))
@example((NDJSON_HEAD + b'"tok "' + NDJSON_TAIL + b"\n") * 3)
@example(b'{"a":' + NDJSON_HEAD + b'"x"' + NDJSON_TAIL + b"\n")
def test_an_ollama_read_becomes_the_same_events_in_c_and_in_python(data: bytes) -> None:
    stream = _openai_client_stream()
    python, c = _both(lambda: stream.read_events_raw(data))
    assert c == python


@needs_c
@settings(max_examples=400, deadline=None)
@given(_reads(SSE_HEAD, SSE_TAIL, b"\n\n"))
@example((SSE_HEAD + b'"tok "' + SSE_TAIL + b"\n\n") * 3)
@example(SSE_HEAD + b'"tok "' + SSE_TAIL + b"\n\n\n")
def test_an_openai_read_becomes_the_same_lines_in_c_and_in_python(data: bytes) -> None:
    stream = _ollama_client_stream()
    python, c = _both(lambda: stream.read_lines_raw(data))
    assert c == python


@needs_c
@settings(max_examples=400, deadline=None)
@given(_reads(SSE_HEAD, SSE_TAIL, b"\n\n"), st.sampled_from([b"", b"\n", b"\n\n"]), st.booleans())
@example((SSE_HEAD + b'"tok "' + SSE_TAIL + b"\n\n") * 3, b"\n", True)
def test_a_block_of_openai_lines_becomes_the_same_lines_in_c_and_in_python(
    data: bytes, before: bytes, cut: bool
) -> None:
    # A block is lines without the last one's newline, maybe after an event's blank line.
    block = before + (data.removesuffix(b"\n\n") if cut else data)
    stream = _ollama_client_stream()
    python, c = _both(lambda: stream.content_lines_raw(block))
    assert c == python


@needs_c
@settings(max_examples=300, deadline=None)
@given(_reads(NDJSON_HEAD, NDJSON_TAIL, b"\n"))
def test_an_ollama_read_gives_the_same_texts_in_c_and_in_python(data: bytes) -> None:
    python, c = _both(lambda: to_openai.read_contents(data))
    assert c == python
    python_texts, c_texts = _both(lambda: to_openai.read_texts(data))  # what the fronts take
    assert c_texts == python_texts


@needs_c
@settings(max_examples=300, deadline=None)
@given(_reads(SSE_HEAD, SSE_TAIL, b"\n\n"))
def test_an_openai_read_gives_the_same_texts_in_c_and_in_python(data: bytes) -> None:
    stream = _ollama_client_stream()
    python, c = _both(lambda: stream.read_texts(data))
    assert c == python


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.lists(_valid_texts(), min_size=1, max_size=8), st.integers(0, 2**62))
def test_numbered_texts_are_framed_as_python_would_write_them(
    texts: list[bytes], number: int
) -> None:
    framed = textpath.frame_texts(b"\n".join(texts), b"<", b"#", number, b">\n")
    assert framed == b"".join(b"<%b#%d>\n" % (t, number + i) for i, t in enumerate(texts))


@needs_c
@pytest.mark.parametrize("text", TRICKY)
def test_each_tricky_text_is_taken_or_refused_alike(text: bytes) -> None:
    ollama = (NDJSON_HEAD + text + NDJSON_TAIL + b"\n") * 2
    openai = (SSE_HEAD + text + SSE_TAIL + b"\n\n") * 2
    stream, learnt = _openai_client_stream(), _ollama_client_stream()
    for python, c in (
        _both(lambda: stream.read_events_raw(ollama)),
        _both(lambda: learnt.read_lines_raw(openai)),
    ):
        assert c == python
        assert (c is not None) is (text in TAKEN)


def test_python_steps_are_picked_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OLLAMUX_PURE_PYTHON", "1")
    assert textpath._compiled() is None


@needs_c
def test_the_c_helper_is_picked_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMUX_PURE_PYTHON", raising=False)
    assert textpath._compiled() is compiled
