"""Answers in Anthropic's Messages shape, from Ollama chat answers (pure: dicts in, bytes or
dicts out).

Both backend kinds' answers reach here in one form, an ``/api/chat`` object (an OpenAI
backend's are converted by ``openai_to_ollama_response`` first). A whole answer becomes a
``message`` object; a stream's lines become Anthropic's events: ``message_start``,
``ping``, then per content block ``content_block_start`` / ``content_block_delta`` /
``content_block_stop`` (thinking, text, one block per tool call), ``message_delta`` with
``stop_reason`` and usage, and ``message_stop``. Every event carries its ``event:`` name
(Anthropic's SDKs skip events without one).
"""

from __future__ import annotations

import json
from typing import Any

from . import textpath
from .common import count_of, json_string, json_template, need, new_id, text_of
from .ollama_to_openai_response import _parts

STOP_REASONS = {"length": "max_tokens"}


def _event(name: bytes, obj: dict[str, Any]) -> bytes:
    return b"event: " + name + b"\ndata: " + json.dumps(obj).encode() + b"\n\n"


def stop_reason(obj: dict[str, Any], tool_use: bool) -> str:
    """``done_reason`` as a ``stop_reason``: ``length`` is ``max_tokens``; the end of a turn
    that called tools is ``tool_use``; anything else ``end_turn``."""
    reason = STOP_REASONS.get(text_of(obj, "done_reason"))
    if reason:
        return reason
    return "tool_use" if tool_use else "end_turn"


def _tool_block(call: dict[str, Any]) -> dict[str, Any]:
    fn = call["function"]
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except ValueError:
            args = {"arguments": args}
    if not isinstance(args, dict):
        args = {"arguments": args}
    return {
        "type": "tool_use",
        "id": call.get("id") or new_id("toolu_"),
        "name": fn.get("name") or "",
        "input": args,
    }


def usage_of(obj: dict[str, Any]) -> dict[str, int]:
    return {
        "input_tokens": count_of(obj, "prompt_eval_count"),
        "output_tokens": count_of(obj, "eval_count"),
    }


def message(obj: dict[str, Any], model: str) -> dict[str, Any]:
    """A whole ``/api/chat`` answer -> a Messages ``message`` object."""
    need(isinstance(obj.get("message"), dict), "no 'message' object in a chat answer")
    content, thinking, calls = _parts(obj["message"])
    blocks: list[dict[str, Any]] = []
    if thinking:
        blocks.append({"type": "thinking", "thinking": thinking, "signature": ""})
    if content or not calls:
        blocks.append({"type": "text", "text": content})
    blocks.extend(_tool_block(call) for call in calls)
    return {
        "id": new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model or text_of(obj, "model"),
        "content": blocks,
        "stop_reason": stop_reason(obj, bool(calls)),
        "stop_sequence": None,
        "usage": usage_of(obj),
    }


def error_event(message: str, kind: str = "api_error") -> bytes:
    return _event(b"error", {"type": "error", "error": {"type": kind, "message": message}})


def _message_start(message_id: str, model: str) -> dict[str, Any]:
    return {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        },
    }


# A stream's first events (``%b``: the message's id, then the model, as JSON), and its last.
_START = (
    b"event: message_start\ndata: "
    + json_template(_message_start("\x01", "\x02"), "\x01", "\x02")
    + b"\n\n"
    + _event(b"ping", {"type": "ping"}).replace(b"%", b"%%")
)
_MESSAGE_STOP = _event(b"message_stop", {"type": "message_stop"})


class MessageStream:
    """``/api/chat`` lines -> Messages stream events (bytes)."""

    def __init__(self, model: str) -> None:
        self.id = new_id("msg_")
        self.model = model
        self.started = False
        self.block = ""  # the kind of the open content block ("" none)
        self.index = -1
        self.tool_use = False
        self.done = False
        self.usage = (0, 0)
        self._text_prefix = b""

    # Tool input is sent whole, once the call is complete: Anthropic's input is a JSON
    # object, checked (and wrapped when it is not one) before it goes out.
    streams_calls = False

    def call_open(self, call_id: str, name: str) -> bytes:
        raise NotImplementedError

    def call_arguments(self, fragment: str) -> bytes | None:
        raise NotImplementedError

    def _start(self) -> bytes:
        self.started = True
        return _START % (json_string(self.id).encode(), json_string(self.model).encode())

    def _close(self) -> bytes:
        if not self.block:
            return b""
        self.block = ""
        return _event(b"content_block_stop", {"type": "content_block_stop", "index": self.index})

    def _open(self, kind: str, block: dict[str, Any]) -> bytes:
        out = self._close()
        self.index += 1
        self.block = kind
        start = {"type": "content_block_start", "index": self.index, "content_block": block}
        return out + _event(b"content_block_start", start)

    def _text_block(self) -> bytes:
        """The events that open a text block when none is open (the message's start
        first); nothing while one is."""
        out = b"" if self.started else self._start()
        if self.block != "text":
            out += self._open("text", {"type": "text", "text": ""})
            self._text_prefix = (
                b'event: content_block_delta\ndata: {"type": "content_block_delta", "index": '
                + str(self.index).encode()
                + b', "delta": {"type": "text_delta", "text": '
            )
        return out

    def text_raw(self, value: bytes) -> bytes:
        """A text delta whose text is ``value``, a JSON string as the backend wrote it (the
        hot path: no dicts built, the string is not decoded)."""
        return self._text_block() + self._text_prefix + value + b"}}\n\n"

    def texts_raw(self, texts: bytes) -> bytes:
        """``text_raw`` for each of ``texts``, JSON strings one per line (a read's): at once."""
        out = self._text_block()
        framed = textpath.frame_texts(texts, self._text_prefix, b"}}\n\n")
        if framed is not None:
            return out + framed
        return out + b"".join(map(self.text_raw, texts.split(b"\n")))

    def _delta(self, delta: dict[str, Any]) -> bytes:
        event = {"type": "content_block_delta", "index": self.index, "delta": delta}
        return _event(b"content_block_delta", event)

    def feed(self, obj: dict[str, Any]) -> bytes:
        """One ``/api/chat`` line (checked) -> its events."""
        need(isinstance(obj.get("done", False), bool), "'done' is not a boolean")
        if self.done:
            return b""
        content, thinking, calls = _parts(obj.get("message"))
        out = [] if self.started else [self._start()]
        if thinking:
            if self.block != "thinking":
                out.append(
                    self._open("thinking", {"type": "thinking", "thinking": "", "signature": ""})
                )
            out.append(self._delta({"type": "thinking_delta", "thinking": thinking}))
        if content:
            out.append(self.text_raw(json_string(content).encode()))
        for call in calls:
            block = _tool_block(call)
            args = block["input"]
            block["input"] = {}
            out.append(self._open("tool_use", block))
            out.append(self._delta({"type": "input_json_delta", "partial_json": json.dumps(args)}))
            self.tool_use = True
        if obj.get("done") is True:
            out.append(self._finish(obj))
        return b"".join(out)

    def _finish(self, obj: dict[str, Any]) -> bytes:
        self.done = True
        usage = usage_of(obj)
        self.usage = (usage["input_tokens"], usage["output_tokens"])
        delta = {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(obj, self.tool_use), "stop_sequence": None},
            "usage": usage,
        }
        return self._close() + _event(b"message_delta", delta) + _MESSAGE_STOP

    def error(self, message: str) -> bytes:
        return error_event(message)
