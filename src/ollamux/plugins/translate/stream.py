"""Response transforms that re-frame a backend's answer into the client's dialect.

NDJSON <-> SSE chunk by chunk (lines split across reads are reassembled first, in linear
time, up to a line limit), whole JSON documents at the end, and error answers (any status
>= 400, or an error object inside a stream) rewritten as the client's dialect writes
errors.

An answer that cannot be understood (a 200 with an HTML page, a stream of the wrong type,
a line that is not a JSON object, a stream that ends before its end) is never relayed as a
success: before anything reached the client the transform raises ``BadUpstreamAnswer``
(the attempt fails with a 502 and may be retried on another backend); after that the
stream ends with an error event in the client's dialect and the task is FAILED.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from ...dialect import NDJSON, SSE, Dialect
from ...errors import error_payload, upstream_error_message
from ...exchange import Exchange, ResponseHead, TaskState
from ...transforms import ResponseTransform, WholeJsonTransform
from . import ollama_to_openai_response as to_openai
from . import openai_to_ollama_response as to_ollama
from .common import (
    DEFAULT_MAX_LINE_BYTES,
    Lines,
    LineTooLong,
    Unreadable,
    answer_of,
    json_string,
    loads,
    new_id,
)

Whole = Callable[[dict[str, Any]], dict[str, Any]]
# A whole answer converted from its bytes (the answer and its prompt and completion token
# counts), or ``None``: then it is parsed and converted by ``Whole``.
Raw = Callable[[bytes], tuple[bytes, int, int] | None]

_SSE_DONE = b"data: [DONE]\n\n"
# What ends each record of a stream of each type: a line, an event.
_RECORD_END = {NDJSON: b"\n", SSE: b"\n\n"}
# What a converter raises on an answer of the wrong shape (besides ``Unreadable``): never a
# 500 for the client, the answer is reported as not understood.
_SHAPE_ERRORS = (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError)
_JSON_TYPES = ("application/json",)
# At most this many lines of a block go one by one before the fast path is ready (an SSE
# stream's role event, a blank line, its first text event, from which the rest is learnt).
_FRONT_LINES = 4
# At most this many records (lines or events) at a stream's start, or at its end, go one by
# one when a read of whole records is not all text.
_EDGE_RECORDS = 4


def _no_texts(data: bytes) -> None:
    return None


def error_text(err: Any) -> str:
    """The message of an error object in either dialect's shape."""
    if isinstance(err, dict):
        message = err.get("message", err.get("error"))
        if isinstance(message, str):
            return message
        return error_text(message) if message is not None else json.dumps(err)
    return err if isinstance(err, str) else json.dumps(err)


class Translating(ResponseTransform):
    """Shared skeleton: pick a mode from the head, buffer whole bodies, convert errors."""

    stream_type = ""  # the backend's streaming content type
    client_type = ""  # what the client gets for a stream

    def __init__(
        self,
        exchange: Exchange,
        whole: Whole,
        max_line: int = DEFAULT_MAX_LINE_BYTES,
        raw: Raw | None = None,
    ) -> None:
        self.exchange = exchange
        self.whole = whole
        self.lines = Lines(max_line)
        self.mode = "whole"
        self.status = 200
        self.buffer: list[bytes] = []
        self.failed = False
        self.sent = False  # some bytes went out to the client
        self.raw = raw  # a whole answer converted from its bytes first, when it can be
        self.event = b""  # an SSE event's name, until its data line comes
        # The fastest path: a read of whole text records (lines or events) converted at
        # once; ``None`` for any other read (an attribute: one call less on every read).
        self.read_of_texts: Callable[[bytes], bytes | None] = _no_texts
        self.on_read: Callable[[], None] | None = None  # called first for each read

    def head(self, head: ResponseHead) -> ResponseHead:
        self.status = head.status
        kind = head.content_type
        if head.status >= 400:
            self.mode = "error"
        elif kind == self.stream_type:
            self.mode = "stream"
        elif kind not in _JSON_TYPES and not kind.endswith("+json"):
            raise Unreadable(f"a {head.status} answer of type {kind or 'unknown'!r}")
        head.headers.popall("Content-Length", None)
        head.headers["Content-Type"] = (
            self.client_type if self.mode == "stream" else "application/json"
        )
        return head

    def feed(self, data: bytes) -> bytes:
        if self.mode != "stream":
            self.buffer.append(data)
            return b""
        if self.failed:
            return b""
        if self.on_read is not None:
            self.on_read()
        lines = self.lines
        if not lines.pending and not self.event and len(data) <= lines.limit:
            # A read with no part of a line before it: when it is whole text records, as
            # most reads are, they go at once.
            fast = self.read_of_texts(data)
            if fast is not None:
                self.sent = True
                return fast
            end = _RECORD_END[self.stream_type]
            if data.endswith(end):
                return self._records(data, end)
        return self._reassembled(data)

    def _reassembled(self, data: bytes) -> bytes:
        """Any read: the lines it completes (with the part of a line the reads before left
        open), the text lines among them at once when they are all text."""
        try:
            block = self.lines.block(data)
        except LineTooLong as exc:
            return self._broken(str(exc), False)
        if block is None:
            return b""
        # A block whose last line is not text (a stream's end) is not tried whole.
        fast = self.text_block(block) if self.looks_text(block) else None
        if fast is not None:
            self.sent = True
            return fast
        return self._mixed(block.split(b"\n"))

    def text_block(self, block: bytes) -> bytes | None:
        """The hottest path: a block of lines that are all plain text pieces, converted
        from their bytes at once; ``None`` when it holds any other line."""
        return None

    def fast_ready(self) -> bool:
        """Whether ``text_block`` may take lines now (not before a stream's first lines
        set it up, nor after its end)."""
        return False

    def looks_text(self, line: bytes) -> bool:
        """Whether ``line`` looks like one ``text_block`` takes (a cheap look, no check)."""
        return False

    def _records(self, data: bytes, sep: bytes) -> bytes:
        """A read of whole records (each ending with ``sep``) that are not all text: a
        stream's first records one by one until the fast path is ready (``fast_ready``),
        then its text records at once and the ones after the last of them (its end) one by
        one."""
        out = b""
        for _ in range(_EDGE_RECORDS):
            if self.fast_ready() or self.failed:
                break
            cut = data.find(sep) + len(sep)
            out += self._lines(data[: cut - len(sep)].split(b"\n"))
            data = data[cut:]
            if not data:
                return out
            fast = self.read_of_texts(data) if self.fast_ready() else None
            if fast is not None:
                self.sent = True
                return out + fast
        if self.failed:
            return out
        fast = self._texts_then_end(data, sep) if self.fast_ready() else None
        return out + (self._reassembled(data) if fast is None else fast)

    def _texts_then_end(self, data: bytes, sep: bytes) -> bytes | None:
        """A read of whole records (each ending with ``sep``), which ``read_of_texts``
        refused whole, that are text records and others after them, as a stream's end is:
        the text ones at once, the others one by one; ``None`` when another kind comes
        before a text record."""
        end = len(data)
        for _ in range(_EDGE_RECORDS):
            at = data.rfind(sep, 0, end - len(sep))
            start = 0 if at < 0 else at + len(sep)
            if self.looks_text(data[start : end - 1]):
                if end == len(data):
                    return None  # it ends with a text: another kind is among its texts
                front = self.read_of_texts(data[:end])
                if front is None:
                    return None
                self.sent = True
                return front + self._lines(data[end : -len(sep)].split(b"\n"))
            if not start:
                return self._lines(data[: -len(sep)].split(b"\n"))
            end = start
        return None

    def _mixed(self, lines: list[bytes]) -> bytes:
        """Lines the fast path refused as one block. Most often they hold a stream's first
        lines (before ``fast_ready``) or its last ones, with text lines between: those
        between still go at once, the others one by one."""
        out = []
        start = 0
        while start < min(len(lines), _FRONT_LINES) and not self.fast_ready():
            out.append(self._lines(lines[start : start + 1]))
            start += 1
        end = len(lines)
        while end > start and not self.looks_text(lines[end - 1]):
            end -= 1
        trimmed = start > 0 or end < len(lines)  # else the block was tried as it is
        if trimmed and end - start > 1 and not self.failed and self.fast_ready():
            fast = self.text_block(b"\n".join(lines[start:end]))
            if fast is not None:
                self.sent = True
                out.append(fast)
                start = end
        out.append(self._lines(lines[start:]))
        return b"".join(out)

    def _lines(self, lines: list[bytes]) -> bytes:
        """Convert complete lines; nothing more once the stream has failed."""
        out: list[bytes] = []
        for line in lines:
            if self.failed:
                break
            try:
                piece = self.line(line)
            except _SHAPE_ERRORS as exc:
                piece = self._broken(str(exc) or type(exc).__name__, bool(out))
            if piece:
                out.append(piece)
        data = b"".join(out)
        if data:
            self.sent = True
        return data

    def _broken(self, message: str, pending: bool) -> bytes:
        """The answer cannot be understood: fail the attempt while nothing went out (it
        may be retried), else end the stream with an error."""
        if not self.sent and not pending:
            self.failed = True
            raise Unreadable(message)
        return self.stream_error(f"the backend's answer cannot be understood: {message}")

    def end(self) -> bytes:
        if self.mode == "stream":
            if self.failed:
                return b""
            tail = self._lines(self.lines.flush())
            if self.failed:
                return tail
            return tail + self.close(bool(tail))
        body = b"".join(self.buffer)
        if self.mode == "error":
            message = upstream_error_message(body)
            self._mark_failed(message)
            return json.dumps(error_payload(self.exchange.dialect, message, self.status)).encode()
        if self.raw is not None and (fast := self.raw(body)) is not None:
            answer, prompt_tokens, completion_tokens = fast
            self.record_usage(prompt_tokens, completion_tokens)
            return answer
        obj = answer_of(body)
        if obj.get("error") is not None or obj.get("object") == "error":
            raise Unreadable(f"an error in a {self.status} answer: {error_text(obj)}")
        try:
            return json.dumps(self.whole(obj)).encode()
        except Unreadable:
            raise
        except _SHAPE_ERRORS as exc:
            raise Unreadable(str(exc) or type(exc).__name__) from exc

    def _mark_failed(self, message: str) -> None:
        self.failed = True
        self.exchange.error = message

    def stream_error(self, message: str) -> bytes:
        """Mark the request failed and render the stream's last words."""
        self._mark_failed(message)
        ex = self.exchange
        ex.outcome = TaskState.FAILED
        ex.stream_broken = True
        payload = json.dumps(error_payload(ex.dialect, message, 500)).encode()
        return b"data: " + payload + b"\n\n" if ex.dialect is Dialect.OPENAI else payload + b"\n"

    def line(self, line: bytes) -> bytes:
        raise NotImplementedError

    def close(self, pending: bool) -> bytes:
        raise NotImplementedError

    def record_usage(self, prompt: int, completion: int) -> None:
        self.exchange.usage = {"prompt_tokens": prompt, "completion_tokens": completion}


class OllamaToOpenAI(Translating):
    """An Ollama backend's answer for an OpenAI client (NDJSON -> SSE)."""

    stream_type = NDJSON
    client_type = SSE

    def __init__(
        self,
        exchange: Exchange,
        whole: Whole,
        stream: to_openai.ChatStream,
        max_line: int = DEFAULT_MAX_LINE_BYTES,
        raw: Raw | None = None,
    ) -> None:
        super().__init__(exchange, self._whole_with_usage(whole), max_line, raw)
        self.stream = stream
        self.read_of_texts = stream.read_events_raw

    def _whole_with_usage(self, whole: Whole) -> Whole:
        me = weakref.ref(self)  # not ``self``: a cycle kept the exchange for the GC

        def convert(obj: dict[str, Any]) -> dict[str, Any]:
            out = whole(obj)
            usage = out.get("usage") or {}
            if "prompt_tokens" in usage and (translator := me()) is not None:
                translator.record_usage(usage["prompt_tokens"], usage.get("completion_tokens", 0))
            return out

        return convert

    def text_block(self, block: bytes) -> bytes | None:
        return self.stream.content_events_raw(block)

    def fast_ready(self) -> bool:
        return not self.stream.done  # the first line too: ``read_events_raw`` gives its role

    def looks_text(self, line: bytes) -> bool:
        return to_openai.looks_like_text(line)

    def line(self, line: bytes) -> bytes:
        fast = self.stream.content_event_raw(line)
        if fast is not None:
            return fast
        line = line.strip()
        if not line:
            return b""
        try:
            obj = loads(line)
        except ValueError as exc:
            raise Unreadable("a line that is not JSON") from exc
        if not isinstance(obj, dict):
            raise Unreadable("a line that is not a JSON object")
        if "error" in obj:
            return self.stream_error(error_text(obj["error"]))
        event = self.stream.content_event(obj) or self.stream.last_events(obj)
        if event is not None:
            return event
        return b"".join(
            [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in self.stream.feed(obj)]
        )

    def close(self, pending: bool) -> bytes:
        if not self.stream.done:
            return self._broken("the stream ended without its final line (done: true)", pending)
        usage = self.stream.usage or {}
        self.record_usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        return _SSE_DONE


class OpenAIToOllama(Translating):
    """An OpenAI backend's answer for an Ollama client (SSE -> NDJSON)."""

    stream_type = SSE
    client_type = NDJSON

    def __init__(
        self,
        exchange: Exchange,
        whole: Whole,
        stream: to_ollama.ChatStream,
        max_line: int = DEFAULT_MAX_LINE_BYTES,
        raw: Raw | None = None,
    ) -> None:
        super().__init__(exchange, self._whole_with_usage(whole), max_line, raw)
        self.stream = stream
        self.read_of_texts = stream.read_lines_raw
        self.on_read = stream.tick  # each read's lines carry the time it came

    def _whole_with_usage(self, whole: Whole) -> Whole:
        me = weakref.ref(self)  # not ``self``: a cycle kept the exchange for the GC

        def convert(obj: dict[str, Any]) -> dict[str, Any]:
            out = whole(obj)
            if "prompt_eval_count" in out and (translator := me()) is not None:
                translator.record_usage(out["prompt_eval_count"], out.get("eval_count", 0))
            return out

        return convert

    def text_block(self, block: bytes) -> bytes | None:
        if self.event or self.stream.done:
            return None
        return self.stream.content_lines_raw(block)

    def fast_ready(self) -> bool:
        return not self.event and not self.stream.done and self.stream.learnt

    def looks_text(self, line: bytes) -> bool:
        return self.stream.looks_learnt(line)

    def line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            if line.startswith(b"event:"):
                self.event = line[6:].strip()
            return b""
        stream = self.stream
        if stream.done:
            return b""  # nothing counts after [DONE]
        if not self.event and stream.looks_learnt(line):
            fast = stream.content_lines_raw(line)
            if fast is not None:
                return fast
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return self._finish()
        event, self.event = self.event, b""
        try:
            obj = loads(payload)
        except ValueError as exc:
            raise Unreadable("an event that is not JSON") from exc
        if not isinstance(obj, dict):
            raise Unreadable("an event that is not a JSON object")
        fast = stream.content_line(obj, b"" if event else line)
        if fast is not None:
            return fast
        if event == b"error" or obj.get("error") is not None or obj.get("object") == "error":
            return self.stream_error(error_text(obj.get("error") or obj))
        return b"".join([json.dumps(o).encode() + b"\n" for o in self.stream.feed(obj)])

    def _finish(self) -> bytes:
        last = self.stream.last_line()
        if last is not None:
            counts = self.stream.counts
            self.record_usage(counts["prompt_eval_count"], counts["eval_count"])
            return last
        out = self.stream.finish_stream()
        if not out:
            return b""
        final = out[-1]
        self.record_usage(final["prompt_eval_count"], final["eval_count"])
        return b"".join([json.dumps(o).encode() + b"\n" for o in out])

    def close(self, pending: bool) -> bytes:
        if not self.stream.done:
            return self._broken("the stream ended before data: [DONE]", pending)
        return b""


class ListingTransform(WholeJsonTransform):
    """A listing from any backend in the client's shape, whatever shape it came in.

    Listings fan out to many backends at once over one exchange, so per-backend state
    cannot be kept: the shape of the body (``models`` or ``data``) tells where it came from.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def rewrite(self, obj: Any) -> Any:
        if not isinstance(obj, dict):
            return obj
        if self.path == "/v1/models" and "models" in obj:
            return to_openai.model_list(obj)
        if self.path == "/api/tags" and "data" in obj:
            return to_ollama.tags_response(obj)
        if self.path == "/api/ps" and "data" in obj:
            return to_ollama.ps_response(obj)
        return obj


class FrontStream(Protocol):
    """A front's stream writer (``anthropic_response.MessageStream``,
    ``responses_response.ResponseStream``): fed ``/api/chat`` lines, writes its events."""

    done: bool
    usage: tuple[int, int]
    streams_calls: bool  # whether tool call arguments are passed on fragment by fragment

    def text_raw(self, value: bytes) -> bytes: ...

    def texts_raw(self, texts: bytes) -> bytes: ...

    def call_open(self, call_id: str, name: str) -> bytes: ...

    def call_arguments(self, fragment: str) -> bytes | None: ...

    def feed(self, obj: dict[str, Any]) -> bytes: ...

    def error(self, message: str) -> bytes: ...


class FrontTransform(Translating):
    """Either backend's chat answer for a Messages or Responses client: whole answers and
    stream lines are brought to ``/api/chat`` objects (an OpenAI backend's through
    ``openai_to_ollama_response``), which the front's writer renders."""

    client_type = SSE

    def __init__(
        self,
        exchange: Exchange,
        ollama: bool,
        whole: Whole,
        writer: FrontStream,
        max_line: int = DEFAULT_MAX_LINE_BYTES,
    ) -> None:
        model = exchange.model or ""
        if not ollama:
            whole = self._from_openai(whole, model)
        super().__init__(exchange, self._with_usage(whole), max_line)
        self.ollama = ollama
        self.stream_type = NDJSON if ollama else SSE
        self.writer = writer
        self.upstream = None if ollama else to_ollama.ChatStream(model)
        self.read_of_texts = self._texts
        # tool calls passed on as their fragments come: index -> the arguments sent
        self.calls_sent: dict[int, str] = {}
        self.open_call = -1  # the index of the call being passed on

    @staticmethod
    def _from_openai(whole: Whole, model: str) -> Whole:
        return lambda obj: whole(to_ollama.chat_response(obj, model))

    def _with_usage(self, whole: Whole) -> Whole:
        def counted(obj: dict[str, Any]) -> dict[str, Any]:
            out = whole(obj)
            usage = out.get("usage") or {}
            self.record_usage(usage.get("input_tokens", 0), usage.get("output_tokens", 0))
            return out

        return counted

    def _texts(self, data: bytes) -> bytes | None:
        """``read_of_texts``: the texts of a read as the writer's text events."""
        if self.writer.done:
            return None
        upstream = self.upstream
        texts = to_openai.read_texts(data) if upstream is None else upstream.read_texts(data)
        return None if texts is None else self.writer.texts_raw(texts)

    def text_block(self, block: bytes) -> bytes | None:
        writer = self.writer
        if writer.done:
            return None
        if self.ollama:
            values = to_openai.raw_contents(block)
        else:
            upstream = self.upstream
            assert upstream is not None
            if self.event or upstream.done:
                return None
            values = upstream.text_values_raw(block)
        if values is None:
            return None
        return b"".join(map(writer.text_raw, values))

    def fast_ready(self) -> bool:
        if self.writer.done:
            return False
        upstream = self.upstream
        return upstream is None or (not self.event and not upstream.done and upstream.learnt)

    def looks_text(self, line: bytes) -> bool:
        upstream = self.upstream
        return to_openai.looks_like_text(line) if upstream is None else upstream.looks_learnt(line)

    def line(self, line: bytes) -> bytes:
        if self.ollama:
            return self._ollama_line(line)
        return self._openai_line(line)

    def _ollama_line(self, line: bytes) -> bytes:
        value = to_openai.raw_content(line)
        if value is not None and not self.writer.done:
            return self.writer.text_raw(value)
        line = line.strip()
        if not line:
            return b""
        obj = self._object(line)
        if "error" in obj:
            return self.stream_error(error_text(obj["error"]))
        return self._fed(obj)

    def _fed(self, obj: dict[str, Any]) -> bytes:
        out = self.writer.feed(obj)
        if self.writer.done:
            self.record_usage(*self.writer.usage)
        return out

    @staticmethod
    def _object(payload: bytes) -> dict[str, Any]:
        try:
            obj = loads(payload)
        except ValueError as exc:
            raise Unreadable("a line that is not JSON") from exc
        if not isinstance(obj, dict):
            raise Unreadable("a line that is not a JSON object")
        return obj

    def _openai_line(self, line: bytes) -> bytes:
        upstream = self.upstream
        assert upstream is not None
        if not line.startswith(b"data:"):
            if line.startswith(b"event:"):
                self.event = line[6:].strip()
            return b""
        if upstream.done:
            return b""
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return self._finish_calls(upstream.finish_stream())
        event, self.event = self.event, b""
        obj = self._object(payload)
        text = to_ollama.chunk_content(obj)
        if text is not None:
            if not event:
                upstream.learn(line, text)
            return self.writer.text_raw(json_string(text).encode())
        if event == b"error" or obj.get("error") is not None or obj.get("object") == "error":
            return self.stream_error(error_text(obj.get("error") or obj))
        # (no ``tick``: the writer reads no ``created_at`` of the pieces ``upstream`` makes)
        out = b"".join([self._fed(o) for o in upstream.feed(obj)])
        if upstream.calls and self.writer.streams_calls:
            out += self._pass_calls(upstream.calls)
        return out

    def _pass_calls(self, calls: dict[int, dict[str, Any]]) -> bytes:
        """Tool call fragments gathered so far, passed on: a call opens once its name is
        known (closing the one before), its new argument text follows. Calls come one
        after another (as vLLM, llama.cpp and OpenAI send them); one that goes on after a
        later one began is caught at the end (``_finish_calls``)."""
        out = []
        for index in sorted(calls):
            call = calls[index]
            if index > self.open_call and call["name"]:
                out.append(self.writer.call_open(call["id"] or new_id("call_"), call["name"]))
                self.open_call = index
                self.calls_sent[index] = ""
            sent = self.calls_sent.get(index)
            args = call["arguments"]
            new = index == self.open_call and sent is not None and len(args) > len(sent)
            if new and sent is not None and args.startswith(sent):
                delta = self.writer.call_arguments(args[len(sent) :])
                if delta is not None:  # else the end finds the call cut short
                    out.append(delta)
                    self.calls_sent[index] = args
        return b"".join(out)

    def _finish_calls(self, pieces: list[dict[str, Any]]) -> bytes:
        """The end of an OpenAI stream: calls already passed on are left out of the whole
        ones ``finish_stream`` gives; a call passed on whose arguments went on differently
        (interleaved with another call or with text) fails the stream rather than leave it
        wrong."""
        upstream = self.upstream
        assert upstream is not None
        if self.calls_sent:
            for index, sent in self.calls_sent.items():
                if upstream.calls[index]["arguments"] != sent:
                    return self.stream_error(
                        "tool call arguments arrived interleaved with other output"
                    )
            keep = [i not in self.calls_sent for i in sorted(upstream.calls)]
            for piece in pieces:
                calls = piece.get("message", {}).get("tool_calls")
                if calls:
                    piece["message"]["tool_calls"] = [
                        c for c, k in zip(calls, keep, strict=True) if k
                    ]
        return b"".join([self._fed(o) for o in pieces])

    def close(self, pending: bool) -> bytes:
        if not self.writer.done:
            return self._broken("the stream ended before its end", pending)
        return b""

    def stream_error(self, message: str) -> bytes:
        self._mark_failed(message)
        ex = self.exchange
        ex.outcome = TaskState.FAILED
        ex.stream_broken = True
        return self.writer.error(message)

    def last_words(self, message: str) -> bytes | None:
        """The front's error event; nothing once its answer was complete (the backend
        went away after its last line)."""
        if self.mode != "stream":
            return None
        return b"" if self.writer.done else self.writer.error(message)
