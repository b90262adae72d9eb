"""Ollama answers -> OpenAI answers (pure: dicts in, dicts out).

Streams are converted by small stateful objects fed one Ollama NDJSON object at a time;
they keep one id per stream and one ``created`` (the first line's ``created_at``, as
Ollama's own layer does), put ``role`` on the first chunk only, split a line carrying both
reasoning and content into a reasoning chunk and a content chunk, number tool calls, and
end with a ``finish_reason`` chunk (plus a usage chunk on request). An answer whose shape
is not Ollama's raises ``Unreadable``: it is never relayed as a success.
"""

from __future__ import annotations

import json
import time
from typing import Any

from . import textpath
from .common import (
    NEWLINE,
    all_text,
    count_of,
    floats_to_base64,
    json_string,
    loads,
    need,
    new_id,
    text_lines,
    text_of,
    unix_of,
)

_OLLAMA_MESSAGE_HEAD = b'"message":{"role":"assistant","content":'
_OLLAMA_PIECE_TAIL = b'},"done":false}'
_OLLAMA_LINE_END = _OLLAMA_PIECE_TAIL + b"\n"
_COMMA = ord(",")
_CONTENT_TAIL = b'}, "finish_reason": null, "logprobs": null}]}\n\n'
# A chunk's event up to its ``choices``, and what may follow: bytes as ``json.dumps``
# writes ``ChatStream._chunk`` (the fast paths write them without building dicts).
_EVENT_HEAD = (
    b'data: {"id": %b, "object": "%b", "created": %d, "model": %b, '
    b'"system_fingerprint": "fp_ollama", "choices": '
)
_DELTA_CONTENT = b'[{"index": 0, "delta": {"content": '
_DELTA_ROLE = b'[{"index": 0, "delta": {"role": "assistant", "content": '
_FINISH_CHOICE = b'[{"index": 0, "delta": {}, "finish_reason": "%b", "logprobs": null}]}\n\n'
_USAGE_CHOICES = (
    b'[], "usage": {"prompt_tokens": %d, "completion_tokens": %d, "total_tokens": %d}}\n\n'
)
# The members of a message that holds nothing but text (``content_event``).
_TEXT_MESSAGE_KEYS = frozenset({"role", "content"})
FINISH_REASONS = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}
_SHOW_KEYS = ("modelfile", "parameters", "template", "details", "model_info", "capabilities")


def usage_of(obj: dict[str, Any]) -> dict[str, int]:
    prompt = count_of(obj, "prompt_eval_count")
    completion = count_of(obj, "eval_count")
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def finish_reason(obj: dict[str, Any], tool_calls: bool) -> str:
    """``done_reason`` as a ``finish_reason``: ``length`` stays ``length`` even after tool
    calls; ``stop`` becomes ``tool_calls`` when the answer called tools."""
    reason = FINISH_REASONS.get(text_of(obj, "done_reason") or "stop", "stop")
    return "tool_calls" if reason == "stop" and tool_calls else reason


def tool_calls_of(calls: list[dict[str, Any]], first_index: int = 0) -> list[dict[str, Any]]:
    """Ollama tool calls (object arguments) -> OpenAI's (id, JSON-string arguments)."""
    out = []
    for i, call in enumerate(calls):
        fn = call["function"]
        args = fn.get("arguments")
        out.append(
            {
                "index": first_index + i,
                "id": call.get("id") or new_id("call_"),
                "type": "function",
                "function": {
                    "name": fn.get("name") or "",
                    "arguments": args if isinstance(args, str) else json.dumps(args or {}),
                },
            }
        )
    return out


def _parts(message: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """Content, thinking and tool calls of an Ollama ``message`` (checked)."""
    if message is None:
        return "", "", []
    need(isinstance(message, dict), "'message' is not an object")
    content = text_of(message, "content")
    thinking = text_of(message, "thinking")
    calls = message.get("tool_calls") or []
    need(isinstance(calls, list), "'tool_calls' is not a list")
    for call in calls:
        need(isinstance(call, dict), "a tool call is not an object")
        fn = call.get("function")
        need(isinstance(fn, dict), "a tool call has no function")
        need(isinstance(fn.get("name", ""), str), "a tool call's name is not a string")
        need(isinstance(call.get("id") or "", str), "a tool call's id is not a string")
    return content, thinking, calls


def _assistant_message(message: Any) -> dict[str, Any]:
    content, thinking, calls = _parts(message)
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        out["reasoning"] = thinking
    if calls:
        converted = tool_calls_of(calls)
        for call in converted:
            del call["index"]
        out["tool_calls"] = converted
        if not out["content"]:
            out["content"] = None
    return out


def chat_completion(obj: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """A whole ``/api/chat`` answer -> a ``chat.completion`` object."""
    need(isinstance(obj.get("message"), dict), "no 'message' object in a chat answer")
    message = _assistant_message(obj["message"])
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": unix_of(obj.get("created_at")),
        "model": model or text_of(obj, "model"),
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason(obj, bool(message.get("tool_calls"))),
                "logprobs": None,
            }
        ],
        "usage": usage_of(obj),
    }


def text_completion(obj: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """A whole ``/api/generate`` answer -> a ``text_completion`` object."""
    need(isinstance(obj.get("response"), str), "no 'response' text in a generate answer")
    return {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": unix_of(obj.get("created_at")),
        "model": model or text_of(obj, "model"),
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "text": obj["response"],
                "finish_reason": finish_reason(obj, False),
                "logprobs": None,
            }
        ],
        "usage": usage_of(obj),
    }


def _check_line(obj: dict[str, Any]) -> None:
    need(isinstance(obj.get("done", False), bool), "'done' is not a boolean")


class ChatStream:
    """``/api/chat`` NDJSON objects -> ``chat.completion.chunk`` objects."""

    object = "chat.completion.chunk"
    id_prefix = "chatcmpl-"

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self._id: str | None = None
        self.created: int | None = None
        self.model = model
        self.include_usage = include_usage
        self.tool_calls = 0
        self.role_sent = False
        self.usage: dict[str, int] | None = None
        self.done = False
        self._event_head: bytes | None = None
        self._prefix: bytes | None = None

    @property
    def id(self) -> str:
        """The stream's id, made when first needed (a whole answer never needs it)."""
        if self._id is None:
            self._id = new_id(self.id_prefix)
        return self._id

    def _pin_created(self, obj: dict[str, Any]) -> int:
        """One ``created`` for the whole stream: the first line's ``created_at``."""
        if self.created is None:
            self.created = unix_of(obj.get("created_at"))
        return self.created

    def _head(self) -> bytes:
        """What every chunk's event begins with, up to its ``choices`` (as ``json.dumps``
        writes ``_chunk``): made once per stream, once ``created`` is pinned."""
        if self._event_head is None:
            created = self.created if self.created is not None else int(time.time())
            self._event_head = _EVENT_HEAD % (
                json_string(self.id).encode(),
                self.object.encode(),
                created,
                json_string(self.model).encode(),
            )
        return self._event_head

    def _content_prefix(self) -> bytes:
        if self._prefix is None:
            self._prefix = self._head() + _DELTA_CONTENT
        return self._prefix

    def content_event(self, obj: dict[str, Any]) -> bytes | None:
        """The hot path: a text-only line (the first one too, with the role) as a ready
        SSE event (no dicts built, no ``json.dumps`` of a whole chunk); ``None`` when the
        line needs ``feed``."""
        message = obj.get("message")
        if (
            self.done
            or obj.get("done") is not False
            or not isinstance(message, dict)
            or not message.keys() <= _TEXT_MESSAGE_KEYS
            or message.get("role", "assistant") != "assistant"
        ):
            return None
        content = message.get("content")
        if not content or not isinstance(content, str):
            return None
        text = json_string(content).encode()
        if not self.role_sent:
            self._pin_created(obj)
            self.role_sent = True
            return self._head() + _DELTA_ROLE + text + _CONTENT_TAIL
        return self._content_prefix() + text + _CONTENT_TAIL

    def last_events(self, obj: dict[str, Any]) -> bytes | None:
        """The final line when it says nothing more (no text, no tool call) as its ready
        events: the ``finish_reason`` chunk, and the usage chunk when asked for (as
        ``feed`` makes them, without building them); ``None`` for any other line."""
        if self.done or not self.role_sent or obj.get("done") is not True:
            return None
        if any(_parts(obj.get("message"))):
            return None
        reason = finish_reason(obj, self.tool_calls > 0)
        self.done = True
        self.usage = usage = usage_of(obj)
        head = self._head()
        out = head + _FINISH_CHOICE % reason.encode()
        if self.include_usage:
            out += head + _USAGE_CHOICES % (
                usage["prompt_tokens"],
                usage["completion_tokens"],
                usage["total_tokens"],
            )
        return out

    def content_event_raw(self, line: bytes) -> bytes | None:
        """The hottest path: a text-only line as Ollama's server writes it (compact JSON,
        ``message`` just before ``done``) becomes an SSE event without parsing the line;
        its content string is copied as it is. ``None`` for any other line."""
        if not self.role_sent or self.done or not line.endswith(_OLLAMA_PIECE_TAIL):
            return None
        value = raw_content(line)
        if value is None:
            return None
        return self._content_prefix() + value + _CONTENT_TAIL

    def read_events_raw(self, data: bytes) -> bytes | None:
        """``content_event_raw`` for every line of a read of whole lines (``read_contents``),
        in one step: most reads of a stream are such. ``None`` for anything else."""
        if self.done:
            return None
        if not self.role_sent:
            return self._first_events_raw(data)
        return read_framed(data, self._prefix or self._content_prefix(), _CONTENT_TAIL)

    def _first_events_raw(self, data: bytes) -> bytes | None:
        """``read_events_raw`` for a stream's first read: its first line gives ``created``
        (only the members before its ``message`` are parsed) and its event the role."""
        at = data.rfind(_OLLAMA_MESSAGE_HEAD, 0, data.find(b"\n"))
        if at < 2 or data[at - 1] != _COMMA:
            return None
        try:
            head = loads(data[: at - 1] + b"}")  # the line is JSON if this is
        except ValueError:
            return None
        if type(head) is not dict or not head or "error" in head:
            return None
        self._pin_created(head)
        prefix = self._content_prefix()
        out = read_framed(data, prefix, _CONTENT_TAIL)
        if out is None:
            return None
        self.role_sent = True
        return self._head() + _DELTA_ROLE + out[len(prefix) :]

    def content_events_raw(self, block: bytes) -> bytes | None:
        """``content_event_raw`` for a block of lines at once: ``None`` unless every line
        in it is a text-only line as Ollama writes it."""
        return self.read_events_raw(block + b"\n")

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created if self.created is not None else int(time.time()),
            "model": self.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def _role(self, delta: dict[str, Any]) -> dict[str, Any]:
        if not self.role_sent:
            self.role_sent = True
            return {"role": "assistant", **delta}
        return delta

    def feed(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        _check_line(obj)
        if self.done:
            return []
        self._pin_created(obj)
        content, thinking, calls = _parts(obj.get("message"))
        done = obj.get("done") is True
        usage = usage_of(obj) if done else None
        reason = finish_reason(obj, self.tool_calls > 0 or bool(calls)) if done else ""
        out: list[dict[str, Any]] = []
        said = bool(content or thinking or calls)
        if said and thinking and (content or calls):
            # Ollama's layer: reasoning first, then the content (or tool calls) apart
            out.append(self._chunk(self._role({"reasoning": thinking})))
            out.append(self._chunk(self._said(content, "", calls)))
        elif said or not self.role_sent:
            out.append(self._chunk(self._role(self._said(content, thinking, calls))))
        if not done:
            return out
        self.done = True
        self.usage = usage
        out.append(self._chunk({}, reason))
        if self.include_usage:
            tail = self._chunk({})
            tail["choices"] = []
            tail["usage"] = usage
            out.append(tail)
        return out

    def _said(self, content: str, thinking: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
        delta: dict[str, Any] = {}
        if content or not calls:
            delta["content"] = content
        if thinking:
            delta["reasoning"] = thinking
        if calls:
            delta["tool_calls"] = tool_calls_of(calls, self.tool_calls)
            self.tool_calls += len(calls)
        return delta


class CompletionStream(ChatStream):
    """``/api/generate`` NDJSON objects -> streamed ``text_completion`` objects."""

    object = "text_completion"
    id_prefix = "cmpl-"

    def content_event(self, obj: dict[str, Any]) -> bytes | None:
        return None  # the chat fast paths do not apply to completions

    def last_events(self, obj: dict[str, Any]) -> bytes | None:
        return None

    def content_event_raw(self, line: bytes) -> bytes | None:
        return None

    def read_events_raw(self, data: bytes) -> bytes | None:
        return None  # and so ``content_events_raw``

    def feed(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        _check_line(obj)
        if self.done:
            return []
        created = self._pin_created(obj)
        done = obj.get("done") is True
        text = text_of(obj, "response")
        text_of(obj, "thinking")
        if not done and not text:
            return []
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": created,
            "model": self.model,
            "system_fingerprint": "fp_ollama",
            "choices": [
                {
                    "index": 0,
                    "text": text,
                    "finish_reason": finish_reason(obj, False) if done else None,
                    "logprobs": None,
                }
            ],
        }
        out = [chunk]
        if done:
            self.done = True
            self.usage = usage_of(obj)
            if self.include_usage:
                out.append({**chunk, "choices": [], "usage": self.usage})
        return out


_NUMBER_TYPES = {int, float}  # what ``is_number`` accepts from ``json.loads`` (not bool)


def embedding_list(obj: dict[str, Any], model: str, encoding_format: str) -> dict[str, Any]:
    """An ``/api/embed`` answer -> OpenAI's embedding list (floats or base64)."""
    vectors: Any = obj.get("embeddings")
    need(isinstance(vectors, list), "no 'embeddings' list in an embed answer")
    data = []
    for i, vector in enumerate(vectors):
        need(
            # by type, in C (``is_number`` per float was most of the translation's cost)
            isinstance(vector, list) and set(map(type, vector)) <= _NUMBER_TYPES,
            "an embedding is not a list of numbers",
        )
        emb: Any = floats_to_base64(vector) if encoding_format == "base64" else vector
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = count_of(obj, "prompt_eval_count")
    return {
        "object": "list",
        "data": data,
        "model": model or text_of(obj, "model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _owner(name: str) -> str:
    """Ollama's namespace of a model name (``library`` for official models)."""
    path = name.split(":", 1)[0]
    parts = path.split("/")
    return parts[-2] if len(parts) >= 2 else "library"


def model_entry(name: str, modified_at: Any = None) -> dict[str, Any]:
    return {
        "id": name,
        "object": "model",
        "created": unix_of(modified_at),
        "owned_by": _owner(name),
    }


def model_list(tags: dict[str, Any]) -> dict[str, Any]:
    """An ``/api/tags`` answer -> OpenAI's ``/v1/models`` list (entries without a name
    are left out)."""
    models = tags.get("models")
    data = []
    for m in models if isinstance(models, list) else []:
        if not isinstance(m, dict):
            continue
        name = m.get("model") or m.get("name")
        if isinstance(name, str) and name:
            data.append(model_entry(name, m.get("modified_at")))
    return {"object": "list", "data": data}


def model_from_show(show: dict[str, Any], name: str) -> dict[str, Any]:
    """An ``/api/show`` answer -> one ``/v1/models/{id}`` object."""
    need(any(key in show for key in _SHOW_KEYS), "not an /api/show answer")
    return model_entry(name, show.get("modified_at"))


def read_contents(data: bytes) -> list[bytes] | None:
    """``raw_content`` of every line of ``data``, a read of whole lines (it ends with a
    newline): ``None`` unless every line is a text-only line as Ollama writes it."""
    if textpath.reframe is not None:
        texts = read_texts(data)
        return None if texts is None else texts.split(b"\n")
    if not data.endswith(_OLLAMA_LINE_END):
        return None
    pieces = data.split(_OLLAMA_LINE_END)  # the lines without their ends, then b""
    pieces.pop()
    # The last "message" of a line is the one JSON keeps; it is looked for from the end,
    # where it is (a token's text is short). No head is found inside a JSON string: its
    # quotes would be escaped there.
    if len(pieces) == 1:  # one line, as a paced stream's reads are: no loop
        line = pieces[0]
        _, head, value = line.rpartition(_OLLAMA_MESSAGE_HEAD)
        ok = head and NEWLINE not in line and text_lines(value, data)
        return [value] if ok else None
    values = [
        parts[2]
        for p in pieces
        if NEWLINE not in p and (parts := p.rpartition(_OLLAMA_MESSAGE_HEAD))[1]
    ]
    if len(values) != len(pieces) or not all_text(values, data):
        return None
    return values


def read_texts(data: bytes) -> bytes | None:
    """``read_contents`` joined by newlines (which no JSON string holds)."""
    texts = read_framed(data, b"", b"\n")
    return None if texts is None else texts[:-1]


def read_framed(data: bytes, before: bytes, after: bytes) -> bytes | None:
    """``before + text + after`` for the text of every line of ``data``, a read of whole
    text-only lines (``read_contents``), in one step (in C when it was built)."""
    if textpath.reframe is not None:
        return textpath.reframe(
            data, b"\n", _OLLAMA_MESSAGE_HEAD, False, _OLLAMA_PIECE_TAIL, before, after
        )
    values = read_contents(data)
    if values is None:
        return None
    if len(values) == 1:
        return before + values[0] + after
    return before + (after + before).join(values) + after


def raw_contents(block: bytes) -> list[bytes] | None:
    """``read_contents`` of lines joined by newlines (a block without its last one)."""
    return read_contents(block + b"\n")


def looks_like_text(line: bytes) -> bool:
    """Whether ``line`` ends as a text-only ``/api/chat`` line does (a look, no check)."""
    return line.endswith(_OLLAMA_PIECE_TAIL)


def raw_content(line: bytes) -> bytes | None:
    """The content of a text-only ``/api/chat`` line as Ollama's server writes it (compact
    JSON, ``message`` just before ``done``), as the JSON string it is: the line is not
    parsed. ``None`` for any other line."""
    values = raw_contents(line)
    return None if values is None else values[0]
