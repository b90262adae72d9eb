"""OpenAI requests -> Ollama requests (pure functions over dicts).

``/v1/chat/completions`` -> ``/api/chat``, ``/v1/completions`` -> ``/api/generate``,
``/v1/embeddings`` -> ``/api/embed``. Bad input raises ``GatewayError(400)`` with the
offending parameter, before any backend is called.
"""

from __future__ import annotations

import json
from typing import Any

from .common import SHARED_OPTIONS, bad_request, stop_list

# reasoning effort (OpenAI) -> Ollama's ``think``
_EFFORT_TO_THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
}


def options_of(body: dict[str, Any]) -> dict[str, Any]:
    """Sampling parameters into Ollama's ``options``."""
    options: dict[str, Any] = {}
    for key in SHARED_OPTIONS:
        if body.get(key) is not None:
            options[key] = body[key]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise bad_request("'max_tokens' must be a positive integer", "max_tokens")
        options["num_predict"] = limit
    stops = stop_list(body.get("stop"))
    if stops:
        options["stop"] = stops
    return options


def _check_n(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("only n=1 is supported by an Ollama backend", "n")


def _format_of(body: dict[str, Any]) -> Any:
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        return None
    kind = fmt.get("type")
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        if not isinstance(schema, dict):
            raise bad_request(
                "response_format.json_schema.schema must be an object", "response_format"
            )
        return schema
    return None


def _think_of(body: dict[str, Any]) -> bool | str | None:
    effort = body.get("reasoning_effort")
    reasoning = body.get("reasoning")
    if effort is None and isinstance(reasoning, dict):
        effort = reasoning.get("effort")
    if effort is None:
        return None
    if effort not in _EFFORT_TO_THINK:
        raise bad_request(
            f"invalid reasoning effort {effort!r}: use none, minimal, low, medium or high",
            "reasoning_effort",
        )
    return _EFFORT_TO_THINK[effort]


def _image_of(part: dict[str, Any], allow_urls: bool) -> str:
    """The base64 payload of an ``image_url`` part (a ``data:`` URI)."""
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str):
        raise bad_request("image_url.url must be a string", "messages")
    if url.startswith("data:"):
        meta, sep, data = url.partition(",")
        if not sep or not meta.endswith(";base64"):
            raise bad_request("image data URIs must be base64-encoded", "messages")
        return data
    if url.startswith(("http://", "https://")) and allow_urls:
        return url  # the plugin fetches it and replaces it with its bytes
    raise bad_request(
        "image URLs are not supported by an Ollama backend: send the image as a data: URI",
        "messages",
    )


def _content_of(content: Any, allow_urls: bool) -> tuple[str, list[str]]:
    """Text and images of a message's ``content`` (a string or a list of parts)."""
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise bad_request("message content must be a string or a list of parts", "messages")
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text"):
            texts.append(str(part.get("text", "")))
        elif kind == "image_url":
            images.append(_image_of(part, allow_urls))
        else:
            raise bad_request(f"unsupported content part type {kind!r}", "messages")
    return "\n".join(texts), images


def _tool_calls_of(calls: Any) -> list[dict[str, Any]]:
    """Assistant ``tool_calls`` with their JSON-string arguments parsed to objects."""
    out: list[dict[str, Any]] = []
    for call in calls or []:
        fn = call.get("function") or {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError as exc:
                raise bad_request(
                    f"tool call arguments are not valid JSON: {exc}", "messages"
                ) from exc
        entry: dict[str, Any] = {"function": {"name": fn.get("name", ""), "arguments": args or {}}}
        if call.get("id"):
            entry["id"] = call["id"]
        out.append(entry)
    return out


def _messages_of(messages: Any, allow_urls: bool) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        raise bad_request("'messages' must be a list", "messages")
    if not messages:
        raise bad_request("'messages' must not be empty", "messages")
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for msg in messages:
        if not isinstance(msg, dict):
            raise bad_request("each message must be an object", "messages")
        role = msg.get("role")
        if role == "developer":
            role = "system"
        text, images = _content_of(msg.get("content"), allow_urls)
        item: dict[str, Any] = {"role": role, "content": text}
        if images:
            item["images"] = images
        thinking = msg.get("reasoning") or msg.get("reasoning_content")
        if thinking:
            item["thinking"] = thinking
        if msg.get("tool_calls"):
            calls = _tool_calls_of(msg["tool_calls"])
            for raw, call in zip(msg["tool_calls"], calls, strict=True):
                if raw.get("id"):
                    call_names[raw["id"]] = call["function"]["name"]
            item["tool_calls"] = calls
        if role == "tool":
            name = msg.get("name") or call_names.get(msg.get("tool_call_id") or "")
            if name:
                item["tool_name"] = name
        out.append(item)
    return out


def chat_request(body: dict[str, Any], allow_image_urls: bool = False) -> dict[str, Any]:
    """``/v1/chat/completions`` body -> ``/api/chat`` body."""
    _check_n(body)
    out: dict[str, Any] = {
        "model": body.get("model"),
        "messages": _messages_of(body.get("messages"), allow_image_urls),
        "stream": body.get("stream") is True,
    }
    options = options_of(body)
    if options:
        out["options"] = options
    fmt = _format_of(body)
    if fmt is not None:
        out["format"] = fmt
    think = _think_of(body)
    if think is not None:
        out["think"] = think
    tools = body.get("tools")
    if tools and body.get("tool_choice") != "none":
        out["tools"] = tools
    return out


def completion_request(body: dict[str, Any]) -> dict[str, Any]:
    """``/v1/completions`` body -> ``/api/generate`` body."""
    _check_n(body)
    prompt = body.get("prompt", "")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise bad_request("only a single string prompt is supported", "prompt")
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise bad_request("'prompt' must be a string", "prompt")
    out: dict[str, Any] = {
        "model": body.get("model"),
        "prompt": prompt,
        "stream": body.get("stream") is True,
    }
    if body.get("suffix"):
        out["suffix"] = body["suffix"]
    options = options_of(body)
    if options:
        out["options"] = options
    return out


def embedding_request(body: dict[str, Any]) -> dict[str, Any]:
    """``/v1/embeddings`` body -> ``/api/embed`` body."""
    inputs = body.get("input")
    ok = isinstance(inputs, str) or (
        isinstance(inputs, list) and inputs and all(isinstance(s, str) for s in inputs)
    )
    if not ok:
        raise bad_request(
            "'input' must be a string or a non-empty list of strings (token arrays are not "
            "supported by an Ollama backend)",
            "input",
        )
    fmt = body.get("encoding_format", "float")
    if fmt not in ("float", "base64"):
        raise bad_request("encoding_format must be 'float' or 'base64'", "encoding_format")
    out: dict[str, Any] = {"model": body.get("model"), "input": inputs}
    if body.get("dimensions"):
        out["dimensions"] = body["dimensions"]
    return out


def show_request(model: str) -> dict[str, Any]:
    """``GET /v1/models/{id}`` -> ``POST /api/show`` body."""
    return {"model": model}
