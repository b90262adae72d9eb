"""Anthropic Messages requests -> chat requests (pure functions over dicts).

A ``/v1/messages`` body becomes a chat-completions body (``chat_request``): the form an
OpenAI-compatible backend takes as it is, and the one ``openai_to_ollama_request`` turns
into ``/api/chat`` for an Ollama backend (``ollama_extras`` then adds what only Ollama
has: ``top_k``, ``think``, ``keep_alive``, ``options``). Every field read is checked
first: bad input is a 400 whose message starts with the field's path, Anthropic's way
(``messages.0.content.1.source.data: ...``).
"""

from __future__ import annotations

import json
import math
from typing import Any

from .common import (
    bad_request,
    check_base64,
    is_int,
    ollama_extensions,
    want_bool,
    want_dict,
    want_list,
    want_number,
    want_str,
)

IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def _err(where: str, message: str) -> Exception:
    return bad_request(f"{where}: {message}", where.split(".", 1)[0])


def _text_of(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _err(f"{where}.text", "must be a string")
    return text


def _image_url(block: dict[str, Any], where: str, for_ollama: bool) -> str:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _err(f"{where}.source", "must be an object")
    kind = source.get("type")
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _err(f"{where}.source.url", "must be an http(s) URL")
        return url
    if kind != "base64":
        raise _err(f"{where}.source.type", "must be 'base64' or 'url'")
    media = source.get("media_type")
    if media not in IMAGE_TYPES:
        raise _err(f"{where}.source.media_type", f"must be one of {', '.join(IMAGE_TYPES)}")
    data = check_base64(source.get("data"), where.split(".", 1)[0], f"{where}.source.data")
    if for_ollama and media == "image/gif":
        media = ""  # Ollama reads the bytes; its OpenAI layer's prefixes leave GIF out
    return f"data:{media};base64,{data}"


def _parts(content: Any, where: str, for_ollama: bool, tool_result: bool = False) -> list[Any]:
    """Text and image blocks as chat content parts."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _err(where, "must be a string or a list of content blocks")
    out: list[Any] = []
    for i, block in enumerate(content):
        at = f"{where}.{i}"
        if not isinstance(block, dict):
            raise _err(at, "must be an object")
        kind = block.get("type")
        if kind == "text":
            out.append({"type": "text", "text": _text_of(block, at)})
        elif kind == "image":
            out.append(
                {"type": "image_url", "image_url": {"url": _image_url(block, at, for_ollama)}}
            )
        elif tool_result:
            raise _err(f"{at}.type", "a tool result holds only 'text' and 'image' blocks")
        else:
            out.append(block)  # the caller knows the other kinds
    return out


def _flatten(parts: list[Any]) -> Any:
    """Chat content: a plain string when there are only texts."""
    if all(p.get("type") == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _user(msg: dict[str, Any], where: str, for_ollama: bool) -> list[dict[str, Any]]:
    """A user turn: tool results first (as ``tool`` messages), then what the user said."""
    out: list[dict[str, Any]] = []
    said: list[Any] = []
    for i, block in enumerate(_parts(msg.get("content"), f"{where}.content", for_ollama)):
        at = f"{where}.content.{i}"
        kind = block.get("type")
        if kind in ("text", "image_url"):
            said.append(block)
        elif kind == "tool_result":
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str) or not call_id:
                raise _err(f"{at}.tool_use_id", "must be a non-empty string")
            want_bool(block, "is_error", "messages", f"{at}.is_error")
            inner = block.get("content", "")
            parts = _parts(inner, f"{at}.content", for_ollama, tool_result=True)
            out.append({"role": "tool", "tool_call_id": call_id, "content": _flatten(parts)})
        else:
            raise _err(f"{at}.type", f"{kind!r} is not supported in a user message")
    if said:
        out.append({"role": "user", "content": _flatten(said)})
    return out


def _assistant(msg: dict[str, Any], where: str, for_ollama: bool) -> dict[str, Any]:
    texts: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for i, block in enumerate(_parts(msg.get("content"), f"{where}.content", for_ollama)):
        at = f"{where}.content.{i}"
        kind = block.get("type")
        if kind == "text":
            texts.append(block["text"])
        elif kind == "thinking":
            text = block.get("thinking")
            if not isinstance(text, str):
                raise _err(f"{at}.thinking", "must be a string")
            thinking.append(text)
        elif kind == "redacted_thinking":
            continue
        elif kind == "tool_use":
            call_id, name = block.get("id"), block.get("name")
            if not isinstance(call_id, str) or not call_id:
                raise _err(f"{at}.id", "must be a non-empty string")
            if not isinstance(name, str) or not name:
                raise _err(f"{at}.name", "must be a non-empty string")
            args = block.get("input", {})
            if not isinstance(args, dict):
                raise _err(f"{at}.input", "must be an object")
            calls.append(
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            )
        else:
            raise _err(f"{at}.type", f"{kind!r} is not supported in an assistant message")
    out: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if thinking:
        out["reasoning"] = "".join(thinking)
    if calls:
        out["tool_calls"] = calls
    return out


def _system(body: dict[str, Any], for_ollama: bool) -> list[dict[str, Any]]:
    system = body.get("system")
    if system is None:
        return []
    parts = _parts(system, "system", for_ollama)
    if any(p.get("type") != "text" for p in parts):
        raise _err("system", "holds only 'text' blocks")
    return [{"role": "system", "content": _flatten(parts)}]


def messages_of(body: dict[str, Any], for_ollama: bool) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise _err("messages", "must be a list of messages")
    out = _system(body, for_ollama)
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise _err(where, "must be an object")
        role = msg.get("role")
        if role == "user":
            out.extend(_user(msg, where, for_ollama))
        elif role == "assistant":
            out.append(_assistant(msg, where, for_ollama))
        else:
            raise _err(f"{where}.role", "must be 'user' or 'assistant'")
    return out


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = want_list(body, "tools")
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(tools):
        at = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _err(at, "must be an object")
        if tool.get("type") not in (None, "custom"):
            raise _err(f"{at}.type", f"server tool {tool.get('type')!r} is not supported")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _err(f"{at}.name", "must be a non-empty string")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _err(f"{at}.input_schema", "must be an object (a JSON schema)")
        description = want_str(tool, "description", "tools", f"{at}.description")
        fn: dict[str, Any] = {"name": name, "parameters": schema}
        if description:
            fn["description"] = description
        out.append({"type": "function", "function": fn})
    return out


def tool_choice_of(body: dict[str, Any]) -> tuple[Any, str | None]:
    """``tool_choice`` as chat's, and the one tool it names (``type: tool``)."""
    choice = want_dict(body, "tool_choice")
    if choice is None:
        return None, None
    kind = choice.get("type")
    want_bool(
        choice, "disable_parallel_tool_use", "tool_choice", "tool_choice.disable_parallel_tool_use"
    )
    if isinstance(kind, str) and kind in _CHOICES:
        return _CHOICES[kind], None
    if kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise _err("tool_choice.name", "must be a non-empty string")
        return {"type": "function", "function": {"name": name}}, name
    raise _err("tool_choice.type", "must be one of auto, any, tool, none")


def think_of(body: dict[str, Any]) -> bool | None:
    """``thinking`` as Ollama's ``think`` (``None``: not asked)."""
    thinking = want_dict(body, "thinking")
    if thinking is None:
        return None
    kind = thinking.get("type")
    if kind in ("enabled", "adaptive", "between_tools"):
        budget = thinking.get("budget_tokens")
        if budget is not None and (not is_int(budget) or budget < 1):
            raise _err("thinking.budget_tokens", "must be a positive integer")
        return True
    if kind == "disabled":
        return False
    raise _err("thinking.type", "must be 'enabled', 'adaptive', 'between_tools' or 'disabled'")


_EFFORTS = ("low", "medium", "high", "xhigh", "max")
# what an OpenAI-compatible server takes (xhigh and max are Anthropic's and Ollama's)
_OLLAMA_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "max"}
_OPENAI_EFFORT = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def output_config_of(body: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """``output_config``: its ``effort`` and its ``format`` as chat's ``response_format``."""
    config = want_dict(body, "output_config")
    if config is None:
        return None, None
    effort = config.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise _err("output_config.effort", f"must be one of {', '.join(_EFFORTS)}")
    fmt = config.get("format")
    if fmt is None:
        return effort, None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _err("output_config.format.type", "must be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _err("output_config.format.schema", "must be an object (a JSON schema)")
    return effort, {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}


def _stops(body: dict[str, Any]) -> list[str] | None:
    stops = want_list(body, "stop_sequences")
    if stops is not None and not all(isinstance(s, str) for s in stops):
        raise _err("stop_sequences", "must be a list of strings")
    return stops or None


def _max_tokens(body: dict[str, Any], required: bool) -> int | None:
    value = body.get("max_tokens")
    if value is None:
        if required:
            raise _err("max_tokens", "Field required")
        return None
    if not is_int(value) or value < 1:
        raise _err("max_tokens", "must be a positive integer")
    return int(value)


def chat_request(body: dict[str, Any], for_ollama: bool) -> dict[str, Any]:
    """``/v1/messages`` body -> chat-completions body (for either backend kind)."""
    out: dict[str, Any] = {"model": body.get("model")}
    out["messages"] = messages_of(body, for_ollama)
    if not out["messages"]:
        raise _err("messages", "at least one message is required")
    out["max_tokens"] = _max_tokens(body, required=True)
    stream = want_bool(body, "stream") is True
    out["stream"] = stream
    for key in ("temperature", "top_p"):
        if want_number(body, key) is not None:
            out[key] = body[key]
    top_k = body.get("top_k")
    if top_k is not None and (not is_int(top_k) or top_k < 0):
        raise _err("top_k", "must be a non-negative integer")
    stops = _stops(body)
    if stops:
        out["stop"] = stops
    tools = _tools(body)
    choice, only = tool_choice_of(body)
    if tools and only is not None and not any(t["function"]["name"] == only for t in tools):
        raise _err("tool_choice.name", f"no tool named {only!r} in tools")
    if tools:
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
    think = think_of(body)
    effort, fmt = output_config_of(body)
    if fmt is not None:
        out["response_format"] = fmt
    want_dict(body, "metadata")
    # ``thinking`` decides when given; else ``output_config.effort`` asks for a level
    if for_ollama:
        if effort is not None and think is None:
            out["reasoning_effort"] = _OLLAMA_EFFORT[effort]  # Ollama's think level
    else:
        if top_k is not None:
            out["top_k"] = top_k  # vLLM, llama.cpp and LiteLLM read it
        if think:
            out["reasoning_effort"] = "medium"
        elif effort is not None and think is None:
            out["reasoning_effort"] = _OPENAI_EFFORT[effort]
        if stream:
            out["stream_options"] = {"include_usage": True}
    return out


def ollama_extras(body: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """What only Ollama's ``/api/chat`` has, added to the converted body: ``top_k``,
    ``think``, a ``tool_choice`` naming one tool (only that tool is offered), and the
    Ollama extensions a client may send along (``keep_alive``, ``options``)."""
    top_k = body.get("top_k")
    if top_k is not None:
        out["options"]["top_k"] = top_k
    think = think_of(body)
    if think is not None:
        out["think"] = think
    _choice, only = tool_choice_of(body)
    if only is not None and out.get("tools"):
        out["tools"] = [t for t in out["tools"] if t["function"]["name"] == only]
    return ollama_extensions(body, out)


# --- count_tokens ----------------------------------------------------------------------

IMAGE_TOKENS = 1600  # a full-size image, by Anthropic's sizing rule (w*h/750, capped)


def count_tokens(body: dict[str, Any]) -> int:
    """An estimate of the input tokens of a ``/v1/messages/count_tokens`` body (checked as
    a Messages request is): about 4 characters per token over every text, tool call,
    tool result and tool schema, 4 more per message, ``IMAGE_TOKENS`` per image."""
    messages = messages_of(body, for_ollama=True)
    tools = _tools(body) or []
    tool_choice_of(body)
    think_of(body)
    chars = 0
    images = 0
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            chars += len(content)
        else:
            for part in content or []:
                if part.get("type") == "text":
                    chars += len(part["text"])
                else:
                    images += 1
        chars += len(msg.get("reasoning", ""))
        for call in msg.get("tool_calls", []):
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    chars += sum(len(json.dumps(t["function"])) for t in tools)
    return math.ceil(chars / 4) + 4 * len(messages) + IMAGE_TOKENS * images
