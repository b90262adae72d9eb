"""Ollama answers -> OpenAI answers (pure: dicts in, dicts out).

Streams are converted by small stateful objects fed one Ollama NDJSON object at a time;
they keep one id and one ``created`` per stream, put ``role`` on the first chunk only,
number tool calls, and end with a ``finish_reason`` chunk (plus a usage chunk on request).
"""

from __future__ import annotations

import json
import time
from typing import Any

from .common import floats_to_base64, loads, new_id, unix_of

_OLLAMA_MESSAGE_HEAD = b'"message":{"role":"assistant","content":'
_OLLAMA_PIECE_TAIL = b'},"done":false}'
_CONTENT_TAIL = b'}, "finish_reason": null, "logprobs": null}]}\n\n'
FINISH_REASONS = {"stop": "stop", "length": "length", "load": "stop", "unload": "stop"}


def usage_of(obj: dict[str, Any]) -> dict[str, int]:
    prompt = int(obj.get("prompt_eval_count") or 0)
    completion = int(obj.get("eval_count") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def finish_reason(obj: dict[str, Any], tool_calls: bool) -> str:
    if tool_calls:
        return "tool_calls"
    return FINISH_REASONS.get(str(obj.get("done_reason") or "stop"), "stop")


def tool_calls_of(calls: list[dict[str, Any]], first_index: int = 0) -> list[dict[str, Any]]:
    """Ollama tool calls (object arguments) -> OpenAI's (id, JSON-string arguments)."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        out.append(
            {
                "index": first_index + i,
                "id": call.get("id") or new_id("call_"),
                "type": "function",
                "function": {
                    "name": fn.get("name", ""),
                    "arguments": args if isinstance(args, str) else json.dumps(args or {}),
                },
            }
        )
    return out


def _assistant_message(message: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if message.get("thinking"):
        out["reasoning"] = message["thinking"]
    if message.get("tool_calls"):
        calls = tool_calls_of(message["tool_calls"])
        for call in calls:
            del call["index"]
        out["tool_calls"] = calls
        if not out["content"]:
            out["content"] = None
    return out


def chat_completion(obj: dict[str, Any], model: str | None = None) -> dict[str, Any]:
    """A whole ``/api/chat`` answer -> a ``chat.completion`` object."""
    message = _assistant_message(obj.get("message") or {})
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": unix_of(obj.get("created_at")),
        "model": model or obj.get("model", ""),
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
    return {
        "id": new_id("cmpl-"),
        "object": "text_completion",
        "created": unix_of(obj.get("created_at")),
        "model": model or obj.get("model", ""),
        "system_fingerprint": "fp_ollama",
        "choices": [
            {
                "index": 0,
                "text": obj.get("response") or "",
                "finish_reason": finish_reason(obj, False),
                "logprobs": None,
            }
        ],
        "usage": usage_of(obj),
    }


class ChatStream:
    """``/api/chat`` NDJSON objects -> ``chat.completion.chunk`` objects."""

    object = "chat.completion.chunk"

    def __init__(self, model: str, include_usage: bool = False) -> None:
        self.id = new_id("chatcmpl-")
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.tool_calls = 0
        self.role_sent = False
        self.usage: dict[str, int] | None = None
        self.done = False
        self._prefix: bytes | None = None

    def _content_prefix(self) -> bytes:
        if self._prefix is None:
            head = self._chunk({})
            del head["choices"]
            self._prefix = (
                b"data: "
                + json.dumps(head).encode()[:-1]
                + b', "choices": [{"index": 0, "delta": {"content": '
            )
        return self._prefix

    def content_event(self, obj: dict[str, Any]) -> bytes | None:
        """The hot path: a text-only line as a ready SSE event (no dicts built, no
        ``json.dumps`` of a whole chunk); ``None`` when the line needs ``feed``."""
        message = obj.get("message")
        if (
            not self.role_sent
            or obj.get("done")
            or not isinstance(message, dict)
            or len(message) > 2
            or "content" not in message
        ):
            return None
        content = message["content"]
        if not content or not isinstance(content, str):
            return None
        return self._content_prefix() + json.dumps(content).encode() + _CONTENT_TAIL

    def content_event_raw(self, line: bytes) -> bytes | None:
        """The hottest path: a text-only line as Ollama's server writes it (compact JSON,
        ``message`` just before ``done``) becomes an SSE event without parsing the line;
        its content string is copied as it is. ``None`` for any other line."""
        if not self.role_sent or not line.endswith(_OLLAMA_PIECE_TAIL):
            return None
        start = line.find(_OLLAMA_MESSAGE_HEAD)
        if start < 0:
            return None
        value = line[start + len(_OLLAMA_MESSAGE_HEAD) : -len(_OLLAMA_PIECE_TAIL)]
        if len(value) < 3 or value[0] != 0x22 or value[-1] != 0x22:
            return None
        try:  # one JSON string, not several fields that happen to start and end with quotes
            loads(value)
        except ValueError:
            return None
        return self._content_prefix() + value + _CONTENT_TAIL

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": "fp_ollama",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def _delta(self, obj: dict[str, Any]) -> dict[str, Any]:
        message = obj.get("message") or {}
        delta: dict[str, Any] = {}
        if not self.role_sent:
            delta["role"] = "assistant"
            self.role_sent = True
        content = message.get("content")
        if content:
            delta["content"] = content
        if message.get("thinking"):
            delta["reasoning"] = message["thinking"]
        calls = message.get("tool_calls")
        if calls:
            delta["tool_calls"] = tool_calls_of(calls, self.tool_calls)
            self.tool_calls += len(calls)
        return delta

    def feed(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        delta = self._delta(obj)
        if not obj.get("done"):
            if delta:
                if "content" not in delta and "tool_calls" not in delta:
                    delta.setdefault("content", "")
                out.append(self._chunk(delta))
            return out
        if len(delta) > ("role" in delta):  # the last line carried content of its own
            out.append(self._chunk(delta))
            delta = {}
        self.done = True
        self.usage = usage_of(obj)
        out.append(self._chunk(delta, finish_reason(obj, self.tool_calls > 0)))
        if self.include_usage:
            tail = self._chunk({})
            tail["choices"] = []
            tail["usage"] = self.usage
            out.append(tail)
        return out


class CompletionStream(ChatStream):
    """``/api/generate`` NDJSON objects -> streamed ``text_completion`` objects."""

    object = "text_completion"

    def __init__(self, model: str, include_usage: bool = False) -> None:
        super().__init__(model, include_usage)
        self.id = new_id("cmpl-")

    def content_event(self, obj: dict[str, Any]) -> bytes | None:
        return None  # the chat fast paths do not apply to completions

    def content_event_raw(self, line: bytes) -> bytes | None:
        return None

    def feed(self, obj: dict[str, Any]) -> list[dict[str, Any]]:
        done = bool(obj.get("done"))
        text = obj.get("response") or ""
        if not done and not text:
            return []
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": self.object,
            "created": self.created,
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


def embedding_list(obj: dict[str, Any], model: str, encoding_format: str) -> dict[str, Any]:
    """An ``/api/embed`` answer -> OpenAI's embedding list (floats or base64)."""
    data = []
    for i, vector in enumerate(obj.get("embeddings") or []):
        emb: Any = floats_to_base64(vector) if encoding_format == "base64" else vector
        data.append({"object": "embedding", "index": i, "embedding": emb})
    tokens = int(obj.get("prompt_eval_count") or 0)
    return {
        "object": "list",
        "data": data,
        "model": model or obj.get("model", ""),
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
    """An ``/api/tags`` answer -> OpenAI's ``/v1/models`` list."""
    data = [
        model_entry(m.get("name") or m.get("model", ""), m.get("modified_at"))
        for m in tags.get("models") or []
        if isinstance(m, dict)
    ]
    return {"object": "list", "data": data}


def model_from_show(show: dict[str, Any], name: str) -> dict[str, Any]:
    """An ``/api/show`` answer -> one ``/v1/models/{id}`` object."""
    return model_entry(name, show.get("modified_at"))
