"""Ollama requests -> OpenAI requests (pure functions over dicts).

``/api/chat`` and ``/api/generate`` -> ``/v1/chat/completions`` (``/v1/completions`` for a
raw or suffixed generate), ``/api/embed`` and ``/api/embeddings`` -> ``/v1/embeddings``.
"""

from __future__ import annotations

import json
from typing import Any

from .common import SHARED_OPTIONS, bad_request, image_mime, new_id, stop_list

# Ollama's ``think`` -> OpenAI's reasoning effort
_THINK_TO_EFFORT = {True: "medium", "low": "low", "medium": "medium", "high": "high"}


def sampling_of(body: dict[str, Any]) -> dict[str, Any]:
    """Ollama ``options`` (and ``format``/``think``) -> OpenAI request fields."""
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise bad_request("'options' must be an object", "options")
    out: dict[str, Any] = {key: options[key] for key in SHARED_OPTIONS if key in options}
    limit = options.get("num_predict")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        out["max_tokens"] = limit
    stops = stop_list(options.get("stop"), "options.stop")
    if stops:
        out["stop"] = stops
    fmt = body.get("format")
    if fmt == "json":
        out["response_format"] = {"type": "json_object"}
    elif isinstance(fmt, dict):
        out["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": fmt},
        }
    think = body.get("think")
    if think is not None and think is not False:
        effort = _THINK_TO_EFFORT.get(think)
        if effort is None:
            raise bad_request("'think' must be true, false, 'low', 'medium' or 'high'", "think")
        out["reasoning_effort"] = effort
    return out


def _user_content(text: str, images: list[str]) -> Any:
    """Message content with images as ``image_url`` parts holding data URIs."""
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for image in images:
        url = f"data:{image_mime(image)};base64,{image}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _messages_of(messages: Any) -> list[dict[str, Any]]:
    """Ollama chat history -> OpenAI messages; tool results get their call's id."""
    if not isinstance(messages, list):
        raise bad_request("'messages' must be a list", "messages")
    pending: list[tuple[str, str]] = []  # (tool name, call id) not yet answered
    out: list[dict[str, Any]] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise bad_request("each message must be an object", "messages")
        role = msg.get("role", "user")
        item: dict[str, Any] = {
            "role": role,
            "content": _user_content(msg.get("content") or "", msg.get("images") or []),
        }
        calls = msg.get("tool_calls")
        if calls:
            item["tool_calls"] = []
            for call in calls:
                fn = call.get("function") or {}
                call_id = call.get("id") or new_id("call_")
                args = fn.get("arguments")
                item["tool_calls"].append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": fn.get("name", ""),
                            "arguments": args if isinstance(args, str) else json.dumps(args or {}),
                        },
                    }
                )
                pending.append((fn.get("name", ""), call_id))
            if not item["content"]:
                item["content"] = None
        if role == "tool":
            item["tool_call_id"] = _answer(pending, msg.get("tool_name") or msg.get("name"))
        out.append(item)
    return out


def _answer(pending: list[tuple[str, str]], name: str | None) -> str:
    """The id of the oldest unanswered call to ``name`` (or of any call); consumed."""
    for i, (call_name, call_id) in enumerate(pending):
        if name is None or call_name == name:
            del pending[i]
            return call_id
    return new_id("call_")


def _stream_fields(body: dict[str, Any]) -> dict[str, Any]:
    stream = body.get("stream") is not False  # Ollama streams unless told otherwise
    out: dict[str, Any] = {"stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """``/api/chat`` body -> ``/v1/chat/completions`` body."""
    out: dict[str, Any] = {
        "model": body.get("model"),
        "messages": _messages_of(body.get("messages")),
    }
    out.update(_stream_fields(body))
    out.update(sampling_of(body))
    if body.get("tools"):
        out["tools"] = body["tools"]
    return out


def uses_completions(body: dict[str, Any]) -> bool:
    """Whether a generate request needs ``/v1/completions`` (raw prompt or a suffix)."""
    return bool(body.get("raw") or body.get("suffix"))


def generate_request(body: dict[str, Any]) -> dict[str, Any]:
    """``/api/generate`` body -> a chat completion (or a completion when raw/suffixed)."""
    prompt = body.get("prompt") or ""
    if not isinstance(prompt, str):
        raise bad_request("'prompt' must be a string", "prompt")
    out: dict[str, Any] = {"model": body.get("model")}
    if uses_completions(body):
        out["prompt"] = prompt
        if body.get("suffix"):
            out["suffix"] = body["suffix"]
    else:
        messages: list[dict[str, Any]] = []
        if body.get("system"):
            messages.append({"role": "system", "content": body["system"]})
        messages.append(
            {"role": "user", "content": _user_content(prompt, body.get("images") or [])}
        )
        out["messages"] = messages
    out.update(_stream_fields(body))
    out.update(sampling_of(body))
    return out


def embed_request(body: dict[str, Any], legacy: bool = False) -> dict[str, Any]:
    """``/api/embed`` (or legacy ``/api/embeddings``) body -> ``/v1/embeddings`` body."""
    inputs = body.get("prompt") if legacy else body.get("input")
    ok = isinstance(inputs, str) or (
        isinstance(inputs, list) and inputs and all(isinstance(s, str) for s in inputs)
    )
    if not ok:
        param = "prompt" if legacy else "input"
        raise bad_request(f"'{param}' must be a string or a list of strings", param)
    out: dict[str, Any] = {"model": body.get("model"), "input": inputs, "encoding_format": "float"}
    if body.get("dimensions"):
        out["dimensions"] = body["dimensions"]
    return out
