"""OpenAI answers -> Ollama answers (pure: dicts in, dicts out).

A stream converter is fed one SSE ``data:`` object at a time and emits Ollama NDJSON
objects: text as it comes, tool calls whole (argument fragments are buffered by index),
and exactly one final ``done: true`` object with ``done_reason`` and the counts and
durations Ollama clients read. An answer whose shape is not OpenAI's raises
``Unreadable``: it is never relayed as a success.
"""

from __future__ import annotations

import json
import struct
import time
from operator import itemgetter
from typing import Any

from . import textpath
from .common import (
    NEWLINE,
    TEXT_STRING,
    Unreadable,
    all_text,
    base64_to_floats,
    count_of,
    is_int,
    is_number,
    iso_of,
    json_string,
    loads_strict,
    need,
    text_lines,
    text_of,
)

_CHAT_TAIL = b'}, "done": false}\n'
_GENERATE_TAIL = b', "done": false}\n'
# A final line's end after the text prefix (``finish_stream``'s object, as dumped).
_GENERATE_LAST = (
    b'"", "done": true, "done_reason": "%b", "total_duration": %d, "load_duration": 0, '
    b'"prompt_eval_count": %d, "prompt_eval_duration": 0, "eval_count": %d, '
    b'"eval_duration": %d}\n'
)
_CHAT_LAST = b'""}' + _GENERATE_LAST[2:]
_EVENT_END = b"\n\n"
_CONTENT_KEY = b'"content":'
# Text chunks ``learn`` looks at per stream: chunks that differ beyond their text (a
# per-chunk field such as OpenAI's ``obfuscation``) never fit a learnt shape.
_MAX_LESSONS = 8
_MAX_TOOL_CALLS = 1024
DONE_REASONS = {"stop": "stop", "length": "length", "tool_calls": "stop", "content_filter": "stop"}


def parse_arguments(text: Any) -> Any:
    """Tool call arguments as an object (Ollama's form); the raw text when not JSON."""
    if not isinstance(text, str):
        return text or {}
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text


def _check_calls(calls: Any) -> list[dict[str, Any]]:
    if calls is None:
        return []
    need(isinstance(calls, list), "'tool_calls' is not a list")
    for call in calls:
        need(isinstance(call, dict), "a tool call is not an object")
        fn = call.get("function")
        need(fn is None or isinstance(fn, dict), "a tool call's function is not an object")
        need(isinstance((fn or {}).get("name") or "", str), "a tool call's name is not a string")
        need(isinstance(call.get("id") or "", str), "a tool call's id is not a string")
    return list(calls)


def tool_calls_of(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        entry: dict[str, Any] = {
            "function": {
                "index": i,
                "name": fn.get("name") or "",
                "arguments": parse_arguments(fn.get("arguments")),
            }
        }
        if call.get("id"):
            entry["id"] = call["id"]
        out.append(entry)
    return out


def usage_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    """An answer's ``usage`` (checked: an object of non-negative integer counts)."""
    usage = obj.get("usage")
    if usage is None:
        return None
    need(isinstance(usage, dict), "'usage' is not an object")
    count_of(usage, "prompt_tokens")
    count_of(usage, "completion_tokens")
    return dict(usage)


def _counts(usage: dict[str, Any] | None, elapsed_ns: int) -> dict[str, Any]:
    usage = usage or {}
    return {
        "total_duration": elapsed_ns,
        "load_duration": 0,
        "prompt_eval_count": count_of(usage, "prompt_tokens"),
        "prompt_eval_duration": 0,
        "eval_count": count_of(usage, "completion_tokens"),
        "eval_duration": elapsed_ns,
    }


def _reasoning(message: dict[str, Any]) -> str:
    return text_of(message, "reasoning_content") or text_of(message, "reasoning")


def _done_reason(choice: dict[str, Any]) -> str:
    return DONE_REASONS.get(text_of(choice, "finish_reason") or "stop", "stop")


def _first_choice(obj: dict[str, Any]) -> dict[str, Any]:
    choices: Any = obj.get("choices")
    need(isinstance(choices, list) and len(choices) > 0, "no 'choices' in a completion")
    choice = choices[0]
    need(isinstance(choice, dict), "a choice is not an object")
    return dict(choice)


def chat_response(obj: dict[str, Any], model: str, elapsed_ns: int = 0) -> dict[str, Any]:
    """A whole ``chat.completion`` -> one ``/api/chat`` answer."""
    choice = _first_choice(obj)
    message: Any = choice.get("message")
    need(isinstance(message, dict), "a chat choice has no 'message' object")
    out_msg: dict[str, Any] = {"role": "assistant", "content": text_of(message, "content")}
    if _reasoning(message):
        out_msg["thinking"] = _reasoning(message)
    calls = _check_calls(message.get("tool_calls"))
    if calls:
        out_msg["tool_calls"] = tool_calls_of(calls)
    out: dict[str, Any] = {
        "model": model or text_of(obj, "model"),
        "created_at": iso_of(obj.get("created")),
        "message": out_msg,
        "done": True,
        "done_reason": _done_reason(choice),
    }
    out.update(_counts(usage_of(obj), elapsed_ns))
    return out


def generate_response(obj: dict[str, Any], model: str, elapsed_ns: int = 0) -> dict[str, Any]:
    """A whole chat completion or text completion -> one ``/api/generate`` answer."""
    choice = _first_choice(obj)
    message: Any = choice.get("message")
    if message is not None:
        need(isinstance(message, dict), "a choice's 'message' is not an object")
        text = text_of(message, "content")
    else:
        need(isinstance(choice.get("text"), str), "a completion choice has no 'text'")
        text = choice["text"]
    out: dict[str, Any] = {
        "model": model or text_of(obj, "model"),
        "created_at": iso_of(obj.get("created")),
        "response": text,
        "done": True,
        "done_reason": _done_reason(choice),
    }
    if isinstance(message, dict) and _reasoning(message):
        out["thinking"] = _reasoning(message)
    out.update(_counts(usage_of(obj), elapsed_ns))
    return out


_dates: dict[int, bytes] = {}


def _date_of(second: int) -> bytes:
    """The date and time of ``second`` as a ``created_at`` begins (up to its fraction),
    formatted once a second for every stream."""
    date = _dates.get(second)
    if date is None:
        _dates.clear()
        date = _dates[second] = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second)).encode()
    return date


class ChatStream:
    """``chat.completion.chunk`` objects -> ``/api/chat`` NDJSON objects."""

    def __init__(self, model: str, generate: bool = False) -> None:
        self.model = model
        self.generate = generate
        self.started = time.monotonic_ns()
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False
        self.counts: dict[str, Any] = {}  # the final line's counts and durations
        self._second = -1
        self._head_second = b""  # ``_model_head`` and the date to the second
        self._prefix = b""
        # The bytes around the content string of the last text-only chunk (``learn``).
        self._head = self._tail = self._end = self._between = b""
        self._tails: tuple[bytes, ...] = ()
        self._text = itemgetter(slice(0))
        self._lessons = 0  # times ``learn`` looked at a line
        self._model_head = b'{"model": ' + json_string(model).encode() + b', "created_at": "'
        self._body_head = (
            b'", "response": ' if generate else (b'", "message": {"role": "assistant", "content": ')
        )
        self.tick()

    def tick(self) -> None:
        """Take the time for the lines that follow (once per read, not once per line)."""
        second, micros = divmod(time.time_ns() // 1000, 1_000_000)  # ints: no float to format
        if second != self._second:  # the date only once a second
            self._second = second
            self._head_second = self._model_head + _date_of(second)
        self._prefix = b"%b%06dZ%b" % (self._head_second, micros, self._body_head)

    @property
    def stamp(self) -> str:
        """The time ``tick`` took, as Ollama writes a ``created_at``."""
        prefix = self._prefix
        return prefix[len(self._model_head) : len(prefix) - len(self._body_head)].decode()

    def content_line(self, obj: dict[str, Any], line: bytes = b"") -> bytes | None:
        """The hot path: a text-only chunk as a ready NDJSON line (no dicts built);
        ``None`` when the chunk needs ``feed``. ``line``: the chunk's ``data:`` line, to
        learn its shape from (``learn``)."""
        content = chunk_content(obj)
        if content is None:
            return None
        if line:
            self.learn(line, content)
        tail = _GENERATE_TAIL if self.generate else _CHAT_TAIL
        return self._prefix + json_string(content).encode() + tail

    def learn(self, line: bytes, content: str) -> None:
        """Keep the bytes around the content string of ``line``, a text-only chunk's
        ``data:`` line whose text is ``content``: a server writes every text chunk of a
        stream alike, so the next ones are known by those bytes (``content_lines_raw``)."""
        if self._lessons >= _MAX_LESSONS:
            return  # a server whose chunks differ beyond their text: stop trying
        self._lessons += 1
        at = line.find(_CONTENT_KEY)
        if at < 0 or line.find(_CONTENT_KEY, at + 1) >= 0:
            return  # no key, or more than one: not a line to learn from
        start = at + len(_CONTENT_KEY)
        while line[start : start + 1] in (b" ", b"\t"):
            start += 1
        match = TEXT_STRING.match(line, start)
        if match is None:
            return
        try:
            if loads_strict(match.group()) != content:
                return
        except ValueError:
            return
        self._head, self._tail = line[:start], line[match.end() :]
        self._tails = (self._tail, self._tail + b"\n")
        self._end = self._tail + _EVENT_END
        self._between = self._end + self._head
        self._text = itemgetter(slice(len(self._head), -len(self._tail)))  # an event's text

    @property
    def learnt(self) -> bool:
        """Whether a text-only chunk's shape was learnt (``learn``)."""
        return bool(self._head)

    def looks_learnt(self, line: bytes) -> bool:
        """Whether ``line`` (or a block of lines that begins and ends with such a line,
        or with the blank line after it) has the learnt chunk's bytes around its text (a
        look, no check)."""
        head = self._head
        return bool(head) and line.startswith(head) and line.endswith(self._tails)

    def read_lines_raw(self, data: bytes) -> bytes | None:
        """``content_lines_raw`` for a read of whole events (``read_texts``), in one step:
        most reads of a stream are such. ``None`` for anything else."""
        prefix = self._prefix
        tail = _GENERATE_TAIL if self.generate else _CHAT_TAIL
        if textpath.reframe is not None:
            if not self._head or self.done:
                return None
            return textpath.reframe(data, _EVENT_END, self._head, True, self._tail, prefix, tail)
        texts = self.read_texts(data)
        if texts is None:
            return None
        if NEWLINE in texts:
            texts = texts.replace(b"\n", tail + prefix)
        return prefix + texts + tail

    def read_texts(self, data: bytes) -> bytes | None:
        """The content strings, joined by newlines, of a read of whole events that are all
        the learnt text-only chunk, as they are; ``None`` for anything else. One event or
        many, no Python loop over them: the bytes around each text are known (``learn``)."""
        head, end = self._head, self._end
        if not head or self.done:
            return None
        if textpath.reframe is not None:
            texts = textpath.reframe(data, _EVENT_END, head, True, self._tail, b"", b"\n")
            return None if texts is None else texts[:-1]
        if not data.startswith(head) or not data.endswith(end):
            return None
        texts = data[len(head) : len(data) - len(end)]  # the text, if it is one event
        if NEWLINE in texts:  # more than one (as a paced stream's reads are not)
            events = data.split(_EVENT_END)
            events.pop()  # b"" after the last event
            texts = b"\n".join(map(self._text, events))
        # The read is exactly the learnt bytes around each line of ``texts``.
        if head + texts.replace(b"\n", self._between) + end != data:
            return None
        return texts if text_lines(texts, data) else None

    def text_values_raw(self, block: bytes) -> list[bytes] | None:
        """The content strings of a block of SSE lines (blank lines between events), as
        they are: ``None`` unless every event in it is the learnt text-only chunk."""
        head, tail = self._head, self._tail
        if not head:
            return None
        lines = block.split(b"\n")
        start, end = len(head), -len(tail)
        values = [
            line[start:end] for line in lines if line.startswith(head) and line.endswith(tail)
        ]
        count = len(lines) - lines.count(b"")
        if not count or len(values) != count or not all_text(values, block):
            return None
        return values

    def content_lines_raw(self, block: bytes) -> bytes | None:
        """The hottest path: SSE lines (one or a read's block) that are all the learnt
        text-only chunk with other texts become NDJSON lines without being parsed, their
        content strings copied as they are. ``None`` when any is another line."""
        prefix = self._prefix
        tail = _GENERATE_TAIL if self.generate else _CHAT_TAIL
        if textpath.reframe is not None and self._head:
            # Events one blank line apart, as servers send them: at once, in C (anything
            # else, the steps below).
            events = block.lstrip(b"\n") + _EVENT_END
            fast = textpath.reframe(events, _EVENT_END, self._head, True, self._tail, prefix, tail)
            if fast is not None:
                return fast
        values = self.text_values_raw(block)
        if values is None:
            return None
        return prefix + (tail + prefix).join(values) + tail

    def _piece(self, content: str = "", thinking: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "created_at": self.stamp}
        if self.generate:
            out["response"] = content
            if thinking:
                out["thinking"] = thinking
        else:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            out["message"] = message
        out["done"] = False
        return out

    def _buffer(self, fragments: list[dict[str, Any]]) -> None:
        for frag in fragments:
            index = frag.get("index", 0)
            need(is_int(index) and 0 <= index < _MAX_TOOL_CALLS, "a tool call's index is bad")
            call = self.calls.setdefault(index, {"id": None, "name": "", "arguments": ""})
            if frag.get("id"):
                call["id"] = frag["id"]
            fn = frag.get("function") or {}
            if fn.get("name"):
                call["name"] += fn["name"]
            args = fn.get("arguments")
            if isinstance(args, str):
                call["arguments"] += args
            elif args:
                call["arguments"] = json.dumps(args)

    def feed(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        usage = usage_of(obj)
        if usage:
            self.usage = usage
        choices = obj.get("choices")
        if choices is None:
            choices = []
        need(isinstance(choices, list), "'choices' is not a list")
        out: list[dict[str, Any]] = []
        for choice in choices:
            need(isinstance(choice, dict), "a choice is not an object")
            delta = choice.get("delta")
            if delta is None:
                delta = choice.get("message") or {}
            need(isinstance(delta, dict), "a choice's delta is not an object")
            text = text_of(delta, "content") or text_of(choice, "text")
            thinking = _reasoning(delta)
            if text or thinking:
                out.append(self._piece(text, thinking))
            calls = _check_calls(delta.get("tool_calls"))
            if calls:
                self._buffer(calls)
            reason = text_of(choice, "finish_reason")
            if reason:
                self.finish = reason
        return out

    def last_line(self) -> bytes | None:
        """``finish_stream``'s final object as its NDJSON line, written from bytes as
        ``json.dumps`` writes it, when no tool call was gathered (``None`` otherwise); its
        counts are kept in ``counts``."""
        if self.done or self.calls:
            return None
        self.done = True
        self.tick()
        counts = self.counts = _counts(self.usage, time.monotonic_ns() - self.started)
        return self._prefix + (_GENERATE_LAST if self.generate else _CHAT_LAST) % (
            DONE_REASONS.get(self.finish or "stop", "stop").encode(),
            counts["total_duration"],
            counts["prompt_eval_count"],
            counts["eval_count"],
            counts["eval_duration"],
        )

    def finish_stream(self) -> list[dict[str, Any]]:
        """The tool calls gathered (whole) and the one final ``done`` object."""
        if self.done:
            return []
        self.done = True
        out: list[dict[str, Any]] = []
        if self.calls and not self.generate:
            piece = self._piece()
            piece["message"]["tool_calls"] = tool_calls_of(
                [
                    {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}}
                    for _, c in sorted(self.calls.items())
                ]
            )
            out.append(piece)
        self.tick()
        final = self._piece()
        final["done"] = True
        final["done_reason"] = DONE_REASONS.get(self.finish or "stop", "stop")
        final.update(_counts(self.usage, time.monotonic_ns() - self.started))
        out.append(final)
        return out


def embed_response(obj: dict[str, Any], model: str, legacy: bool = False) -> dict[str, Any]:
    """An OpenAI embedding list -> ``/api/embed`` (or legacy ``/api/embeddings``) answer."""
    data: Any = obj.get("data")
    need(isinstance(data, list), "no 'data' list in an embedding answer")
    items = []
    for item in data:
        need(isinstance(item, dict), "an embedding entry is not an object")
        index = item.get("index", 0)
        need(is_int(index) and index >= 0, "an embedding's index is not a number")
        emb = item.get("embedding")
        if isinstance(emb, str):
            try:
                emb = base64_to_floats(emb)
            except (ValueError, struct.error) as exc:
                raise Unreadable("an embedding is not valid base64") from exc
        need(
            isinstance(emb, list) and all(is_number(x) for x in emb),
            "an embedding is not a list of numbers",
        )
        items.append((index, emb))
    vectors = [emb for _, emb in sorted(items, key=lambda pair: pair[0])]
    if legacy:
        return {"embedding": vectors[0] if vectors else []}
    tokens = count_of(usage_of(obj) or {}, "prompt_tokens")
    return {
        "model": model or text_of(obj, "model"),
        "embeddings": vectors,
        "total_duration": 0,
        "load_duration": 0,
        "prompt_eval_count": tokens,
    }


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "",
        "family": "",
        "families": None,
        "parameter_size": "",
        "quantization_level": "",
    }


def _tag(entry: dict[str, Any]) -> dict[str, Any]:
    name = str(entry["id"])
    return {
        "name": name,
        "model": name,
        "modified_at": iso_of(entry.get("created")),
        "size": 0,
        "digest": "",
        "details": _details(),
    }


def _entries(models: dict[str, Any]) -> list[dict[str, Any]]:
    data = models.get("data")
    return [
        m
        for m in (data if isinstance(data, list) else [])
        if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]
    ]


def tags_response(models: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``/v1/models`` list -> an ``/api/tags`` answer."""
    return {"models": [_tag(m) for m in _entries(models)]}


def ps_response(models: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's ``/v1/models`` list -> an ``/api/ps`` answer: a server of this kind keeps
    every model it lists loaded."""
    out = []
    for m in _entries(models):
        entry = _tag(m)
        del entry["modified_at"]
        entry.update(expires_at="0001-01-01T00:00:00Z", size_vram=0, context_length=0)
        out.append(entry)
    return {"models": out}


def show_response(models: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The ``/api/show`` answer for ``name`` from the ``/v1/models`` list (None: unknown)."""
    for m in _entries(models):
        if m.get("id") == name:
            return {
                "modelfile": "",
                "parameters": "",
                "template": "",
                "details": _details(),
                "model_info": {},
                "capabilities": ["completion"],
                "modified_at": iso_of(m.get("created")),
            }
    return None


def chunk_content(obj: dict[str, Any]) -> str | None:
    """The text of a text-only ``chat.completion.chunk`` (``None``: it needs the full
    conversion)."""
    choices = obj.get("choices")
    if type(choices) is not list or len(choices) != 1 or obj.get("usage") is not None:
        return None
    choice = choices[0]
    if type(choice) is not dict:
        return None
    delta = choice.get("delta")
    if choice.get("finish_reason") is not None or type(delta) is not dict:
        return None
    content = delta.get("content")
    if not content or type(content) is not str:
        return None
    for key, value in delta.items():
        if value and key != "content" and not (key == "role" and value == "assistant"):
            return None
    return content
