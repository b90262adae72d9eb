"""Answers in the OpenAI Responses shape, from Ollama chat answers (pure: dicts in, bytes or
dicts out).

As for the Messages front, both backend kinds' answers reach here as ``/api/chat``
objects. A whole answer becomes a ``response`` object; a stream's lines become the
Responses events: ``response.created``, ``response.in_progress``, per output item
``response.output_item.added`` ... ``response.output_item.done`` (a reasoning item with
``response.reasoning_text.delta``, a message with ``response.content_part.added`` /
``response.output_text.delta`` / ``.done``, a function call with
``response.function_call_arguments.delta`` / ``.done``), then ``response.completed`` (or
``response.incomplete`` when the output limit cut it) with usage. Every event has its
``sequence_number``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from . import textpath
from .common import count_of, json_string, json_template, loads, need, new_id, text_of
from .ollama_to_openai_response import _parts

# What follows a text delta's JSON string in its event, before the delta's number.
_SEQUENCE = b', "sequence_number": '


def _event(name: str, obj: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + json.dumps(obj).encode() + b"\n\n"


def usage_of(obj: dict[str, Any]) -> dict[str, Any]:
    prompt = count_of(obj, "prompt_eval_count")
    completion = count_of(obj, "eval_count")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion,
    }


def _arguments(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args or {})


def _function_call(call: dict[str, Any], status: str = "completed") -> dict[str, Any]:
    fn = call["function"]
    return {
        "id": new_id("fc_"),
        "type": "function_call",
        "status": status,
        "call_id": call.get("id") or new_id("call_"),
        "name": fn.get("name") or "",
        "arguments": _arguments(fn.get("arguments")),
    }


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": [_text_part(text)] if status == "completed" else [],
    }


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _reasoning_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}] if text else [],
    }


# A text part, a finished message item and an opened one (``%b``: its id, then its text,
# as JSON).
_TEXT_PART = json_template(_text_part("\x00"), "\x00")
_MESSAGE_DONE = json_template(_message_item("\x01", "\x00"), "\x01", "\x00")
_MESSAGE_ADDED = json_template(_message_item("\x01", "", "in_progress"), "\x01")
_EMPTY_PART = _TEXT_PART % b'""'
# Where a content part is: its item's id (JSON), the item's index.
_WHERE = b'"item_id": %b, "output_index": %d, "content_index": 0'


class _Base:
    def __init__(self, model: str, echo: dict[str, Any]) -> None:
        self.id = new_id("resp_")
        self.model = model
        self.echo = echo
        self.created = int(time.time())

    def response(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return {**self._own(status, output, usage, error), **self.echo}

    def _own(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        error: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """A response object's members but the request's it echoes."""
        incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": incomplete,
            "model": self.model,
            "output": output,
            "store": False,
            "usage": usage,
        }


def status_of(obj: dict[str, Any]) -> str:
    return "incomplete" if text_of(obj, "done_reason") == "length" else "completed"


def response(obj: dict[str, Any], model: str, echo: dict[str, Any]) -> dict[str, Any]:
    """A whole ``/api/chat`` answer -> a ``response`` object."""
    need(isinstance(obj.get("message"), dict), "no 'message' object in a chat answer")
    content, thinking, calls = _parts(obj["message"])
    output: list[dict[str, Any]] = []
    if thinking:
        output.append(_reasoning_item(new_id("rs_"), thinking))
    if content or not calls:
        output.append(_message_item(new_id("msg_"), content))
    output.extend(_function_call(call) for call in calls)
    return _Base(model, echo).response(status_of(obj), output, usage_of(obj))


class ResponseStream(_Base):
    """``/api/chat`` lines -> Responses stream events (bytes)."""

    def __init__(self, model: str, echo: dict[str, Any]) -> None:
        super().__init__(model, echo)
        self.seq = 0
        self.started = False
        self.done = False
        self.output: list[bytes] = []  # the items finished, as JSON
        self.item: dict[str, Any] | None = None  # the open item (message or reasoning)
        self.pieces: list[bytes] = []  # the open item's text, as JSON strings
        self.usage = (0, 0)
        self._prefix = b""
        # The echoed request members as JSON (``, `` before each), encoded once per stream:
        # a response object is written three times, its echo is the same each time.
        members = json.dumps(echo)[1:-1]
        self._echo = (", " + members).encode() if members else b""

    def _response_json(
        self, status: str, usage: dict[str, Any] | None, error: dict[str, Any] | None = None
    ) -> bytes:
        """``json.dumps(self.response(status, <the items finished>, ...))``, from the items'
        JSON and the echo's, each encoded once."""
        own = json.dumps(self._own(status, [], usage, error)).encode()
        if self.output:  # the first "output" member is the response's: strings escape quotes
            own = own.replace(b'"output": []', b'"output": [' + b", ".join(self.output) + b"]", 1)
        return own[:-1] + self._echo + b"}"

    def _raw_event(self, name: bytes, members: bytes) -> bytes:
        """An event whose members between its type and its number are JSON already."""
        seq = self.seq
        self.seq += 1
        head = b"event: " + name + b'\ndata: {"type": "' + name + b'", '
        return head + members + _SEQUENCE + str(seq).encode() + b"}\n\n"

    def _item_done(self, index: int, item: bytes) -> bytes:
        """``response.output_item.done`` for ``item`` (JSON), kept for the response."""
        self.output.append(item)
        members = b'"output_index": %d, "item": %b' % (index, item)
        return self._raw_event(b"response.output_item.done", members)

    def _event(self, name: str, obj: dict[str, Any]) -> bytes:
        obj["sequence_number"] = self.seq
        self.seq += 1
        return _event(name, {"type": name, **obj})

    def _start(self) -> bytes:
        """``response.created`` and ``response.in_progress``: one response object, encoded
        once for both."""
        self.started = True
        head = b'"response": ' + self._response_json("in_progress", None)
        created = self._raw_event(b"response.created", head)
        return created + self._raw_event(b"response.in_progress", head)

    def _text(self) -> str:
        """The open item's text: its pieces decoded at once (one parse, not one per piece)."""
        if not self.pieces:
            return ""
        return "".join(loads(b"[" + b",".join(self.pieces) + b"]"))

    def _close(self) -> bytes:
        item, self.item = self.item, None
        if item is None:
            return b""
        index = len(self.output)
        if item["type"] == "function_call":
            return self._call_done(index, {**item, "status": "completed"})
        text = self._text()
        self.pieces = []
        quoted = json_string(text).encode()  # encoded once for the events that repeat it
        item_id = json_string(item["id"]).encode()
        where = _WHERE % (item_id, index)
        if item["type"] == "message":
            part = _TEXT_PART % quoted
            members = where + b', "text": ' + quoted + b', "logprobs": []'
            out = self._raw_event(b"response.output_text.done", members)
            out += self._raw_event(b"response.content_part.done", where + b', "part": ' + part)
            done = _MESSAGE_DONE % (item_id, quoted)
        else:
            done = json.dumps(_reasoning_item(item["id"], text)).encode()
            members = where + b', "text": ' + quoted
            out = self._raw_event(b"response.reasoning_text.done", members)
        return out + self._item_done(index, done)

    def _open_text(self, kind: str) -> bytes:
        out = b"" if self.started else self._start()
        out += self._close()
        index = len(self.output)
        if kind == "message":
            item = _message_item(new_id("msg_"), "", "in_progress")
            item_id = json_string(item["id"]).encode()
            added = b'"output_index": %d, "item": %b' % (index, _MESSAGE_ADDED % item_id)
            out += self._raw_event(b"response.output_item.added", added)
            part = _WHERE % (item_id, index) + b', "part": ' + _EMPTY_PART
            out += self._raw_event(b"response.content_part.added", part)
            delta = "response.output_text.delta"
        else:
            item = _reasoning_item(new_id("rs_"), "")
            out += self._event("response.output_item.added", {"output_index": index, "item": item})
            delta = "response.reasoning_text.delta"
        self.item = item
        self._prefix = (
            b"event: "
            + delta.encode()
            + b'\ndata: {"type": "'
            + delta.encode()
            + b'", "item_id": "'
            + item["id"].encode()
            + b'", "output_index": '
            + str(index).encode()
            + b', "content_index": 0, '
            + (b'"logprobs": [], ' if kind == "message" else b"")
            + b'"delta": '
        )
        return out

    def _delta(self, value: bytes) -> bytes:
        self.pieces.append(value)
        seq = self.seq
        self.seq += 1
        return self._prefix + value + _SEQUENCE + str(seq).encode() + b"}\n\n"

    def _message(self) -> bytes:
        """The events that open a message item when none is open; nothing while one is."""
        if self.item is not None and self.item["type"] == "message":
            return b""
        return self._open_text("message")

    def texts_raw(self, texts: bytes) -> bytes:
        """``text_raw`` for each of ``texts``, JSON strings one per line (a read's): at once,
        each delta numbered in turn."""
        out = self._message()
        seq = self.seq
        framed = textpath.frame_texts(texts, self._prefix, _SEQUENCE, seq, b"}\n\n")
        if framed is not None:
            self.pieces.append(texts.replace(b"\n", b","))  # joined by commas at the end
            self.seq = seq + texts.count(b"\n") + 1
            return out + framed
        return out + b"".join(map(self.text_raw, texts.split(b"\n")))

    def text_raw(self, value: bytes) -> bytes:
        """An output text delta whose text is ``value``, a JSON string as the backend wrote
        it (the hot path: no dicts built, the string decoded only when the item ends)."""
        return self._message() + self._delta(value)

    def feed(self, obj: dict[str, Any]) -> bytes:
        """One ``/api/chat`` line (checked) -> its events."""
        need(isinstance(obj.get("done", False), bool), "'done' is not a boolean")
        if self.done:
            return b""
        content, thinking, calls = _parts(obj.get("message"))
        out = [] if self.started else [self._start()]
        if thinking:
            if self.item is None or self.item["type"] != "reasoning":
                out.append(self._open_text("reasoning"))
            out.append(self._delta(json_string(thinking).encode()))
        if content:
            out.append(self.text_raw(json_string(content).encode()))
        for call in calls:
            out.append(self._call(call))
        if obj.get("done") is True:
            out.append(self._finish(obj))
        return b"".join(out)

    def _call(self, call: dict[str, Any]) -> bytes:
        """A whole tool call: its item, its arguments in one delta, its end."""
        out = self._close()
        index = len(self.output)
        item = _function_call(call)
        added = {**item, "status": "in_progress", "arguments": ""}
        out += self._event("response.output_item.added", {"output_index": index, "item": added})
        args = item["arguments"]
        where = {"item_id": item["id"], "output_index": index}
        out += self._event("response.function_call_arguments.delta", {**where, "delta": args})
        return out + self._call_done(index, item)

    def _call_done(self, index: int, item: dict[str, Any]) -> bytes:
        where = {"item_id": item["id"], "output_index": index}
        out = self._event(
            "response.function_call_arguments.done",
            {**where, "name": item["name"], "arguments": item["arguments"]},
        )
        return out + self._item_done(index, json.dumps(item).encode())

    # A tool call whose arguments arrive in fragments (an OpenAI backend's stream): its item
    # opens with the first fragment, each fragment is a delta, it ends when another item
    # begins or the answer ends.
    streams_calls = True

    def call_open(self, call_id: str, name: str) -> bytes:
        out = b"" if self.started else self._start()
        out += self._close()
        item = _function_call({"id": call_id, "function": {"name": name, "arguments": ""}})
        added = {**item, "status": "in_progress"}
        out += self._event(
            "response.output_item.added", {"output_index": len(self.output), "item": added}
        )
        self.item = item
        return out

    def call_arguments(self, fragment: str) -> bytes | None:
        """A fragment's delta; ``None`` when the call's item was ended already (text came
        in between: the rest of its arguments cannot follow)."""
        item = self.item
        if item is None or item["type"] != "function_call":
            return None
        item["arguments"] += fragment
        where = {"item_id": item["id"], "output_index": len(self.output)}
        return self._event("response.function_call_arguments.delta", {**where, "delta": fragment})

    def _finish(self, obj: dict[str, Any]) -> bytes:
        out = self._close()
        self.done = True
        usage = usage_of(obj)
        self.usage = (usage["input_tokens"], usage["output_tokens"])
        status = status_of(obj)
        final = b'"response": ' + self._response_json(status, usage)
        name = b"response.completed" if status == "completed" else b"response.incomplete"
        return out + self._raw_event(name, final)

    def error(self, message: str) -> bytes:
        """A stream's last words when it broke: an ``error`` event, then ``response.failed``."""
        out = b"" if self.started else self._start()
        out += self._event("error", {"code": "server_error", "message": message, "param": None})
        error = {"code": "server_error", "message": message}
        failed = b'"response": ' + self._response_json("failed", None, error)
        self.done = True
        return out + self._raw_event(b"response.failed", failed)
