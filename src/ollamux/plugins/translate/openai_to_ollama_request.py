"""OpenAI requests -> Ollama requests (pure functions over dicts).

``/v1/chat/completions`` -> ``/api/chat``, ``/v1/completions`` -> ``/api/generate``,
``/v1/embeddings`` -> ``/api/embed``. Every field read is checked first: bad input raises
``GatewayError(400)`` naming the parameter, before any backend is called. Where Ollama's
own OpenAI layer has a message for a mistake, the same words are used.
"""

from __future__ import annotations

import json
from typing import Any

from ...errors import GatewayError
from .common import (
    bad_request,
    check_base64,
    go_type,
    is_int,
    is_number,
    stop_list,
    want_bool,
    want_dict,
    want_int,
    want_list,
    want_number,
    want_str,
)

# reasoning effort (OpenAI) -> Ollama's ``think``, as Ollama's own layer maps it
_EFFORT_TO_THINK: dict[str, bool | str] = {
    "none": False,
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "max": "max",
    "xhigh": "max",
    "ultra": "max",
}
_IMAGE_PREFIXES = (
    "data:image/jpeg;base64,",
    "data:image/jpg;base64,",
    "data:image/png;base64,",
    "data:image/webp;base64,",
    "data:;base64,",
)
_INVALID_FORMAT = "invalid message format"
_INVALID_IMAGE = "invalid image input"


def _sampling(body: dict[str, Any], completions: bool) -> dict[str, Any]:
    """Sampling parameters into Ollama's ``options``, with OpenAI's defaults made explicit
    (as Ollama's layer does): temperature 1 and top_p 1, and on ``/v1/completions`` the
    penalties 0, so Ollama's own defaults (temperature 0.8, ...) do not apply."""
    for key in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        want_number(body, key)
    seed = want_int(body, "seed")
    options: dict[str, Any] = {}
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if limit is not None:
        param = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        if not is_int(limit) or limit < 1:
            raise bad_request(f"'{param}' must be a positive integer", param)
        options["num_predict"] = limit
    stops = stop_list(body.get("stop"))
    if stops:
        options["stop"] = stops
    temperature = body.get("temperature")
    options["temperature"] = 1.0 if temperature is None else temperature
    if seed is not None:
        options["seed"] = seed
    for key in ("frequency_penalty", "presence_penalty"):
        if body.get(key) is not None:
            options[key] = body[key]
        elif completions:
            options[key] = 0.0
    top_p = body.get("top_p")
    options["top_p"] = 1.0 if top_p is None or (completions and top_p == 0) else top_p
    return options


def options_of(body: dict[str, Any]) -> dict[str, Any]:
    """Chat sampling parameters into Ollama's ``options`` (OpenAI's defaults included)."""
    return _sampling(body, completions=False)


def _check_n(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and (not is_number(n) or n != 1):
        raise bad_request("only n=1 is supported by an Ollama backend", "n")


def _stream_of(body: dict[str, Any]) -> tuple[bool, bool]:
    """``stream`` (absent means false) and ``stream_options.include_usage``."""
    stream = want_bool(body, "stream") is True
    options = want_dict(body, "stream_options")
    usage = want_bool(options or {}, "include_usage", "stream_options.include_usage")
    return stream, usage is True


def include_usage(body: dict[str, Any]) -> bool:
    """``stream_options.include_usage`` (``stream`` itself is checked by the converter)."""
    if "stream_options" not in body:
        return False
    options = want_dict(body, "stream_options")
    return want_bool(options or {}, "include_usage", "stream_options.include_usage") is True


def _format_of(body: dict[str, Any]) -> Any:
    fmt = want_dict(body, "response_format")
    if fmt is None:
        return None
    kind = want_str(fmt, "type", "response_format.type")
    kind = (kind or "").strip().lower()
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = want_dict(fmt, "json_schema", "response_format.json_schema")
        schema = (spec or {}).get("schema")
        if schema is None:
            return None
        if not isinstance(schema, dict):
            raise bad_request(
                "response_format.json_schema.schema must be an object", "response_format"
            )
        return schema
    if kind in ("", "text"):
        return None
    raise bad_request(
        f"invalid response_format type {kind!r}: use text, json_object or json_schema",
        "response_format",
    )


def _think_of(body: dict[str, Any]) -> bool | str | None:
    reasoning = want_dict(body, "reasoning")
    if reasoning is not None:  # Ollama's layer: the object wins over reasoning_effort
        effort = want_str(reasoning, "effort", "reasoning.effort")
        param = "reasoning"
    else:
        effort = want_str(body, "reasoning_effort")
        param = "reasoning_effort"
    if not effort:
        return None
    if effort not in _EFFORT_TO_THINK:
        raise bad_request(
            f'invalid reasoning value: "{effort}" (must be "minimal", "low", "medium", '
            '"high", "xhigh", "ultra", "max", or "none")',
            param,
        )
    return _EFFORT_TO_THINK[effort]


def _image_of(part: dict[str, Any], allow_urls: bool) -> str:
    """The base64 payload of an ``image_url`` part (a ``data:`` URI)."""
    spec = part.get("image_url")
    url = spec.get("url") if isinstance(spec, dict) else spec
    if not isinstance(url, str):
        raise bad_request(_INVALID_FORMAT, "messages")
    if url.startswith(("http://", "https://")):
        if allow_urls:
            return url  # the plugin fetches it and replaces it with its bytes
        raise bad_request(
            "image URLs are not currently supported, please use base64 encoded data instead",
            "messages",
        )
    for prefix in _IMAGE_PREFIXES:
        if url.startswith(prefix):
            data = url[len(prefix) :]
            try:
                return check_base64(data, "messages")
            except GatewayError as exc:
                raise bad_request(_INVALID_IMAGE, "messages") from exc
    raise bad_request(_INVALID_IMAGE, "messages")


def _content_of(content: Any, allow_urls: bool) -> tuple[str, list[str]]:
    """Text and images of a message's ``content`` (a string or a list of parts)."""
    if isinstance(content, str):
        return content, []
    texts: list[str] = []
    images: list[str] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "input_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(_INVALID_FORMAT, "messages")
            texts.append(text)
        elif kind == "image_url":
            images.append(_image_of(part, allow_urls))
        else:
            raise bad_request(_INVALID_FORMAT, "messages")
    return "\n".join(texts), images


def _tool_calls_of(calls: list[Any]) -> list[dict[str, Any]]:
    """Assistant ``tool_calls`` with their JSON-string arguments parsed to objects."""
    out: list[dict[str, Any]] = []
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            raise bad_request("each tool call must be an object with a function", "messages")
        name = want_str(fn, "name", "messages", "tool_calls[].function.name") or ""
        call_id = want_str(call, "id", "messages", "tool_calls[].id")
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError as exc:
                raise bad_request("invalid tool call arguments", "messages") from exc
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise bad_request("invalid tool call arguments", "messages")
        entry: dict[str, Any] = {"function": {"name": name, "arguments": args}}
        if call_id:
            entry["id"] = call_id
        out.append(entry)
    return out


def _call_names(messages: list[Any]) -> dict[str, str]:
    """Tool call id -> function name over the whole history; a repeated id names its last
    call (Ollama's layer looks from the end)."""
    names: dict[str, str] = {}
    for msg in messages:
        calls = msg.get("tool_calls") if isinstance(msg, dict) else None
        for call in calls if isinstance(calls, list) else []:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(call.get("id"), str):
                name = fn.get("name")
                names[call["id"]] = name if isinstance(name, str) else ""
    return names


def _plain(msg: Any) -> dict[str, Any] | None:
    """Most of a history: ``{role, content}`` with text content and no other field. Such a
    message becomes itself (``developer`` as ``system``) with none of the checks and
    labels the general case prepares; ``None`` for any other message (and for tool
    results, whose name is looked up)."""
    if type(msg) is not dict or len(msg) != 2:
        return None
    role, content = msg.get("role"), msg.get("content")
    if type(role) is not str or type(content) is not str or role.lower() == "tool":
        return None
    return {"role": "system" if role == "developer" else role, "content": content}


def _messages_of(messages: Any, allow_urls: bool) -> list[dict[str, Any]]:
    if messages is None or (isinstance(messages, list) and not messages):
        raise bad_request("[] is too short - 'messages'", "messages")
    if not isinstance(messages, list):
        raise bad_request("'messages' must be a list", "messages")
    call_names = _call_names(messages)
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        plain = _plain(msg)
        if plain is not None:
            out.append(plain)
            continue
        if not isinstance(msg, dict):
            raise bad_request("each message must be an object", "messages")
        at = f"messages[{i}]"
        role = want_str(msg, "role", "messages", f"{at}.role") or ""
        if role == "developer":
            role = "system"
        content = msg.get("content")
        calls = msg.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise bad_request("'tool_calls' must be a list", "messages")
        if not isinstance(content, str | list) and calls is None:
            raise bad_request(f"invalid message content type: {go_type(content)}", "messages")
        text, images = _content_of(content if isinstance(content, str | list) else "", allow_urls)
        item: dict[str, Any] = {"role": role, "content": text}
        if images:
            item["images"] = images
        thinking = want_str(msg, "reasoning", "messages", f"{at}.reasoning") or want_str(
            msg, "reasoning_content", "messages", f"{at}.reasoning_content"
        )
        if thinking:
            item["thinking"] = thinking
        if calls:
            item["tool_calls"] = _tool_calls_of(calls)
        call_id = want_str(msg, "tool_call_id", "messages", f"{at}.tool_call_id")
        name = want_str(msg, "name", "messages", f"{at}.name")
        if role.lower() == "tool":
            tool_name = name or call_names.get(call_id or "")
            if tool_name:
                item["tool_name"] = tool_name
        if call_id:
            item["tool_call_id"] = call_id
        out.append(item)
    return out


def _tools_of(body: dict[str, Any]) -> list[Any] | None:
    tools = want_list(body, "tools")
    if tools and not all(isinstance(t, dict) for t in tools):
        raise bad_request("each tool must be an object", "tools")
    return tools


# A request with only these members (an SDK's call with no sampling parameter) has no
# option to check or carry: OpenAI's defaults are all its ``options``.
_MINIMAL = frozenset({"model", "messages", "stream"})


def chat_request(body: dict[str, Any], allow_image_urls: bool = False) -> dict[str, Any]:
    """``/v1/chat/completions`` body -> ``/api/chat`` body."""
    if body.keys() <= _MINIMAL:
        stream = want_bool(body, "stream") is True
        return {
            "model": body.get("model"),
            "messages": _messages_of(body.get("messages"), allow_image_urls),
            "stream": stream,
            "options": {"temperature": 1.0, "top_p": 1.0},  # ``options_of`` of no member
        }
    _check_n(body)
    stream, _usage = _stream_of(body)
    out: dict[str, Any] = {
        "model": body.get("model"),
        "messages": _messages_of(body.get("messages"), allow_image_urls),
        "stream": stream,
        "options": options_of(body),
    }
    fmt = _format_of(body)
    if fmt is not None:
        out["format"] = fmt
    think = _think_of(body)
    if think is not None:
        out["think"] = think
    tools = _tools_of(body)
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise bad_request("'tool_choice' must be a string or an object", "tool_choice")
    if tools and choice != "none":
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
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise bad_request("'prompt' must be a string", "prompt")
    stream, _usage = _stream_of(body)
    suffix = want_str(body, "suffix")
    out: dict[str, Any] = {"model": body.get("model"), "prompt": prompt, "stream": stream}
    if suffix:
        out["suffix"] = suffix
    out["options"] = _sampling(body, completions=True)
    return out


def encoding_format_of(body: dict[str, Any]) -> str:
    fmt = body.get("encoding_format")
    if fmt is None or fmt == "":
        return "float"
    if not isinstance(fmt, str) or fmt.lower() not in ("float", "base64"):
        raise bad_request(
            f"Invalid value for 'encoding_format' = {fmt}. Supported values: ['float', 'base64'].",
            "encoding_format",
        )
    return fmt.lower()


def embedding_request(body: dict[str, Any]) -> dict[str, Any]:
    """``/v1/embeddings`` body -> ``/api/embed`` body."""
    encoding_format_of(body)
    inputs = body.get("input")
    if inputs == "":
        inputs = [""]
    if inputs is None or inputs == []:
        raise bad_request("invalid input", "input")
    ok = isinstance(inputs, str) or (
        isinstance(inputs, list) and all(isinstance(s, str) for s in inputs)
    )
    if not ok:
        raise bad_request(
            "'input' must be a string or a non-empty list of strings (token arrays are not "
            "supported by an Ollama backend)",
            "input",
        )
    dimensions = want_int(body, "dimensions")
    out: dict[str, Any] = {"model": body.get("model"), "input": inputs}
    if dimensions:
        out["dimensions"] = dimensions
    return out


def show_request(model: str) -> dict[str, Any]:
    """``GET /v1/models/{id}`` -> ``POST /api/show`` body."""
    return {"model": model}
