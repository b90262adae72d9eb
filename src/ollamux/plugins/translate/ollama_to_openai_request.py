"""Ollama requests -> OpenAI requests (pure functions over dicts).

``/api/chat`` and ``/api/generate`` -> ``/v1/chat/completions`` (``/v1/completions`` for a
raw or suffixed generate), ``/api/embed`` and ``/api/embeddings`` -> ``/v1/embeddings``.
Every field read is checked first: bad input is a 400 naming the field.
"""

from __future__ import annotations

import json
from typing import Any

from .common import (
    SHARED_OPTIONS,
    bad_request,
    check_base64,
    image_mime,
    is_number,
    new_id,
    stop_list,
    want_bool,
    want_dict,
    want_int,
    want_list,
    want_number,
    want_str,
)

# Ollama's ``think`` -> OpenAI's reasoning effort
_THINK_TO_EFFORT = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
_THINK_VALUES = '("high", "medium", "low", "max", true, or false)'


def sampling_of(body: dict[str, Any]) -> dict[str, Any]:
    """Ollama ``options`` (and ``format``/``think``) -> OpenAI request fields."""
    options = want_dict(body, "options") or {}
    for key in SHARED_OPTIONS:
        if key == "seed":
            want_int(options, key, "options.seed")
        else:
            want_number(options, key, f"options.{key}")
    out: dict[str, Any] = {key: options[key] for key in SHARED_OPTIONS if key in options}
    limit = want_int(options, "num_predict", "options.num_predict")
    if limit is not None and limit > 0:
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
    elif fmt not in (None, ""):
        raise bad_request("'format' must be \"json\" or a JSON schema object", "format")
    think = think_of(body)
    if think is not None:
        out["reasoning_effort"] = think
    return out


def think_of(body: dict[str, Any]) -> str | None:
    """Ollama's ``think`` as a reasoning effort (``None``: nothing to send)."""
    think = body.get("think")
    if think is None or think is False:
        return None
    if think is True:
        return "medium"
    if isinstance(think, str):
        if think not in _THINK_TO_EFFORT:
            raise bad_request(
                f'invalid think value: "{think}" (must be "high", "medium", '
                '"low", "max", true, or false)',
                "think",
            )
        return _THINK_TO_EFFORT[think]
    raise bad_request(f"think must be a boolean or string {_THINK_VALUES}", "think")


def images_of(holder: dict[str, Any], param: str = "images", label: str | None = None) -> list[str]:
    images = want_list(holder, "images", param, label) or []
    return [check_base64(image, param, label) for image in images]


def _user_content(text: str, images: list[str]) -> Any:
    """Message content with images as ``image_url`` parts holding data URIs."""
    if not images:
        return text
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for image in images:
        url = f"data:{image_mime(image)};base64,{image}"
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return parts


def _arguments_text(args: Any) -> str:
    if isinstance(args, str):
        return args
    if args is None:
        return "{}"
    if not isinstance(args, dict):
        raise bad_request("tool call arguments must be an object", "messages")
    return json.dumps(args)


def _messages_of(messages: Any) -> list[dict[str, Any]]:
    """Ollama chat history -> OpenAI messages; tool results get their call's id."""
    if not isinstance(messages, list):
        raise bad_request("'messages' must be a list", "messages")
    pending: list[tuple[str, str]] = []  # (tool name, call id) not yet answered
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise bad_request("each message must be an object", "messages")
        at = f"messages[{i}]"
        role = want_str(msg, "role", "messages", f"{at}.role") or "user"
        content = want_str(msg, "content", "messages", f"{at}.content") or ""
        item: dict[str, Any] = {
            "role": role,
            "content": _user_content(content, images_of(msg, "messages", f"{at}.images")),
        }
        want_str(msg, "thinking", "messages", f"{at}.thinking")
        calls = want_list(msg, "tool_calls", "messages", f"{at}.tool_calls")
        if calls:
            item["tool_calls"] = []
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if not isinstance(fn, dict):
                    raise bad_request("each tool call must have a function object", "messages")
                name = want_str(fn, "name", "messages", f"{at}.tool_calls[].function.name")
                name = name or ""
                call_id = want_str(call, "id", "messages", f"{at}.tool_calls[].id")
                call_id = call_id or new_id("call_")
                item["tool_calls"].append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": name,
                            "arguments": _arguments_text(fn.get("arguments")),
                        },
                    }
                )
                pending.append((name, call_id))
            if not item["content"]:
                item["content"] = None
        tool_name = want_str(msg, "tool_name", "messages", f"{at}.tool_name") or want_str(
            msg, "name", "messages", f"{at}.name"
        )
        given_id = want_str(msg, "tool_call_id", "messages", f"{at}.tool_call_id")
        if role == "tool":
            item["tool_call_id"] = given_id or _answer(pending, tool_name)
        out.append(item)
    return out


def _answer(pending: list[tuple[str, str]], name: str | None) -> str:
    """The id of the oldest unanswered call to ``name`` (or of any call); consumed."""
    for i, (call_name, call_id) in enumerate(pending):
        if name is None or call_name == name:
            del pending[i]
            return call_id
    return new_id("call_")


def stream_of(body: dict[str, Any]) -> bool:
    return want_bool(body, "stream") is not False  # Ollama streams unless told otherwise


def _stream_fields(body: dict[str, Any]) -> dict[str, Any]:
    stream = stream_of(body)
    out: dict[str, Any] = {"stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out


def check_keep_alive(body: dict[str, Any]) -> Any:
    value = body.get("keep_alive")
    if value is not None and not (is_number(value) or isinstance(value, str)):
        raise bad_request("'keep_alive' must be a number of seconds or a duration", "keep_alive")
    return value


def _tools_of(body: dict[str, Any]) -> list[Any] | None:
    tools = want_list(body, "tools")
    if tools and not all(isinstance(t, dict) for t in tools):
        raise bad_request("each tool must be an object", "tools")
    return tools


def chat_request(body: dict[str, Any]) -> dict[str, Any]:
    """``/api/chat`` body -> ``/v1/chat/completions`` body."""
    check_keep_alive(body)
    out: dict[str, Any] = {
        "model": body.get("model"),
        "messages": _messages_of(body.get("messages")),
    }
    out.update(_stream_fields(body))
    out.update(sampling_of(body))
    tools = _tools_of(body)
    if tools:
        out["tools"] = tools
    return out


def uses_completions(body: dict[str, Any]) -> bool:
    """Whether a generate request needs ``/v1/completions`` (raw prompt or a suffix)."""
    return bool(body.get("raw") is True or body.get("suffix"))


def generate_request(body: dict[str, Any]) -> dict[str, Any]:
    """``/api/generate`` body -> a chat completion (or a completion when raw/suffixed)."""
    prompt = want_str(body, "prompt") or ""
    system = want_str(body, "system")
    suffix = want_str(body, "suffix")
    want_bool(body, "raw")
    check_keep_alive(body)
    images = images_of(body)
    out: dict[str, Any] = {"model": body.get("model")}
    if uses_completions(body):
        out["prompt"] = prompt
        if suffix:
            out["suffix"] = suffix
    else:
        messages: list[dict[str, Any]] = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": _user_content(prompt, images)})
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
    dimensions = want_int(body, "dimensions")
    want_bool(body, "truncate")
    out: dict[str, Any] = {"model": body.get("model"), "input": inputs, "encoding_format": "float"}
    if dimensions:
        out["dimensions"] = dimensions
    return out
