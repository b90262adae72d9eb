"""OpenAI answers -> Ollama answers (pure: dicts in, dicts out).

A stream converter is fed one SSE ``data:`` object at a time and emits Ollama NDJSON
objects: text as it comes, tool calls whole (argument fragments are buffered by index),
and exactly one final ``done: true`` object with ``done_reason`` and the counts and
durations Ollama clients read.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .common import base64_to_floats, iso_of

_CHAT_TAIL = b'}, "done": false}\n'
_GENERATE_TAIL = b', "done": false}\n'
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


def tool_calls_of(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        entry: dict[str, Any] = {
            "function": {
                "index": i,
                "name": fn.get("name", ""),
                "arguments": parse_arguments(fn.get("arguments")),
            }
        }
        if call.get("id"):
            entry["id"] = call["id"]
        out.append(entry)
    return out


def _counts(usage: dict[str, Any] | None, elapsed_ns: int) -> dict[str, Any]:
    usage = usage or {}
    return {
        "total_duration": elapsed_ns,
        "load_duration": 0,
        "prompt_eval_count": int(usage.get("prompt_tokens") or 0),
        "prompt_eval_duration": 0,
        "eval_count": int(usage.get("completion_tokens") or 0),
        "eval_duration": elapsed_ns,
    }


def _reasoning(message: dict[str, Any]) -> str:
    return str(message.get("reasoning_content") or message.get("reasoning") or "")


def chat_response(obj: dict[str, Any], model: str, elapsed_ns: int = 0) -> dict[str, Any]:
    """A whole ``chat.completion`` -> one ``/api/chat`` answer."""
    choice = (obj.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    out_msg: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    if _reasoning(message):
        out_msg["thinking"] = _reasoning(message)
    if message.get("tool_calls"):
        out_msg["tool_calls"] = tool_calls_of(message["tool_calls"])
    out: dict[str, Any] = {
        "model": model or obj.get("model", ""),
        "created_at": iso_of(obj.get("created")),
        "message": out_msg,
        "done": True,
        "done_reason": DONE_REASONS.get(choice.get("finish_reason") or "stop", "stop"),
    }
    out.update(_counts(obj.get("usage"), elapsed_ns))
    return out


def generate_response(obj: dict[str, Any], model: str, elapsed_ns: int = 0) -> dict[str, Any]:
    """A whole chat completion or text completion -> one ``/api/generate`` answer."""
    choice = (obj.get("choices") or [{}])[0]
    message = choice.get("message")
    text = message.get("content") if isinstance(message, dict) else choice.get("text")
    out: dict[str, Any] = {
        "model": model or obj.get("model", ""),
        "created_at": iso_of(obj.get("created")),
        "response": text or "",
        "done": True,
        "done_reason": DONE_REASONS.get(choice.get("finish_reason") or "stop", "stop"),
    }
    if isinstance(message, dict) and _reasoning(message):
        out["thinking"] = _reasoning(message)
    out.update(_counts(obj.get("usage"), elapsed_ns))
    return out


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
        self.stamp = ""
        self._second = -1
        self._second_text = ""
        self._prefix = b""
        self._model_head = b'{"model": ' + json.dumps(model).encode() + b', "created_at": "'
        self._body_head = (
            b'", "response": ' if generate else (b'", "message": {"role": "assistant", "content": ')
        )
        self.tick()

    def tick(self) -> None:
        """Take the time for the lines that follow (once per read, not once per line)."""
        now = time.time()
        second = int(now)
        if second != self._second:  # format the date only once a second
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        self.stamp = f"{self._second_text}.{int((now - second) * 1e6):06d}Z"
        self._prefix = self._model_head + self.stamp.encode() + self._body_head

    def content_line(self, obj: dict[str, Any]) -> bytes | None:
        """The hot path: a text-only chunk as a ready NDJSON line (no dicts built);
        ``None`` when the chunk needs ``feed``."""
        choices = obj.get("choices")
        if not choices or len(choices) != 1 or obj.get("usage"):
            return None
        choice = choices[0]
        delta = choice.get("delta")
        if choice.get("finish_reason") or not isinstance(delta, dict):
            return None
        content = delta.get("content")
        if not content or not isinstance(content, str):
            return None
        for key, value in delta.items():
            if value and key not in ("content", "role"):
                return None
        tail = _GENERATE_TAIL if self.generate else _CHAT_TAIL
        return self._prefix + json.dumps(content).encode() + tail

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
            index = int(frag.get("index") or 0)
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
        if obj.get("usage"):
            self.usage = obj["usage"]
        out: list[dict[str, Any]] = []
        for choice in obj.get("choices") or []:
            delta = choice.get("delta") or choice.get("message") or {}
            text = delta.get("content") or choice.get("text") or ""
            thinking = _reasoning(delta)
            if text or thinking:
                out.append(self._piece(text, thinking))
            if delta.get("tool_calls"):
                self._buffer(delta["tool_calls"])
            if choice.get("finish_reason"):
                self.finish = choice["finish_reason"]
        return out

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
    vectors = []
    for item in sorted(obj.get("data") or [], key=lambda d: int(d.get("index") or 0)):
        emb = item.get("embedding")
        vectors.append(base64_to_floats(emb) if isinstance(emb, str) else emb)
    if legacy:
        return {"embedding": vectors[0] if vectors else []}
    tokens = int((obj.get("usage") or {}).get("prompt_tokens") or 0)
    return {
        "model": model or obj.get("model", ""),
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
    name = str(entry.get("id", ""))
    return {
        "name": name,
        "model": name,
        "modified_at": iso_of(entry.get("created")),
        "size": 0,
        "digest": "",
        "details": _details(),
    }


def _entries(models: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in models.get("data") or [] if isinstance(m, dict)]


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
