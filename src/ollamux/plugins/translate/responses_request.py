"""OpenAI Responses requests -> chat requests (pure functions over dicts).

A ``/v1/responses`` body becomes a chat-completions body (``chat_request``): what an
OpenAI-compatible backend takes as it is, and what ``openai_to_ollama_request`` turns into
``/api/chat`` for an Ollama backend. The gateway keeps no state: ``previous_response_id``,
``conversation``, ``background`` and ``store: true`` are a 400. Every field read is
checked first: bad input is a 400 naming the field (``param``).
"""

from __future__ import annotations

import json
from typing import Any

from .common import bad_request, is_int, want_bool, want_dict, want_list, want_number, want_str
from .openai_to_ollama_request import _EFFORT_TO_THINK

_STATEFUL = ("previous_response_id", "conversation")


def _text_parts(content: Any, where: str, param: str) -> Any:
    """A message's ``content`` as chat content (a string, or parts with images)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise bad_request(f"'{where}' must be a string or a list of content parts", param)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise bad_request(f"'{at}' must be an object", param)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text", "summary_text", "reasoning_text"):
            text = part.get("text")
            if not isinstance(text, str):
                raise bad_request(f"'{at}.text' must be a string", param)
            parts.append({"type": "text", "text": text})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise bad_request(
                    f"'{at}.image_url' must be a data URI or a URL (file ids are not supported)",
                    param,
                )
            parts.append({"type": "image_url", "image_url": {"url": url}})
        elif kind == "refusal":
            refusal = part.get("refusal")
            if not isinstance(refusal, str):
                raise bad_request(f"'{at}.refusal' must be a string", param)
            parts.append({"type": "text", "text": refusal})
        else:
            raise bad_request(f"'{at}.type' {kind!r} is not supported", param)
    if all(p["type"] == "text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts


def _arguments(item: dict[str, Any], where: str) -> str:
    args = item.get("arguments", "")
    if isinstance(args, dict):
        return json.dumps(args)
    if not isinstance(args, str):
        raise bad_request(f"'{where}.arguments' must be a JSON string", "input")
    return args or "{}"


def messages_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as chat messages; consecutive function calls join one
    assistant message, function outputs become ``tool`` messages."""
    out: list[dict[str, Any]] = []
    instructions = want_str(body, "instructions")
    if instructions:
        out.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        out.append({"role": "user", "content": items})
        return out
    if not isinstance(items, list):
        raise bad_request("'input' must be a string or a list of input items", "input")
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise bad_request(f"'{where}' must be an object", "input")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise bad_request(
                    f"'{where}.role' must be user, assistant, system or developer", "input"
                )
            content = _text_parts(item.get("content"), f"{where}.content", "input")
            out.append({"role": "system" if role == "developer" else role, "content": content})
        elif kind == "function_call":
            call_id, name = item.get("call_id"), item.get("name")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request(f"'{where}.call_id' must be a non-empty string", "input")
            if not isinstance(name, str) or not name:
                raise bad_request(f"'{where}.name' must be a non-empty string", "input")
            call = {
                "id": call_id,
                "type": "function",
                "function": {"name": name, "arguments": _arguments(item, where)},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or not call_id:
                raise bad_request(f"'{where}.call_id' must be a non-empty string", "input")
            output = _text_parts(item.get("output"), f"{where}.output", "input")
            out.append({"role": "tool", "tool_call_id": call_id, "content": output})
        elif kind == "reasoning":
            continue  # a reasoning item from an earlier answer: the model does not reread it
        else:
            raise bad_request(f"'{where}.type' {kind!r} is not supported", "input")
    if not items:
        raise bad_request("'input' must not be empty", "input")
    return out


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = want_list(body, "tools")
    if tools is None:
        return None
    out = []
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise bad_request(f"'{at}' must be an object", "tools")
        if tool.get("type") != "function":
            raise bad_request(
                f"'{at}.type' {tool.get('type')!r} is not supported (only function tools)",
                "tools",
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request(f"'{at}.name' must be a non-empty string", "tools")
        params = tool.get("parameters")
        if params is not None and not isinstance(params, dict):
            raise bad_request(f"'{at}.parameters' must be an object", "tools")
        description = want_str(tool, "description", "tools", f"{at}.description")
        want_bool(tool, "strict", "tools", f"{at}.strict")
        fn: dict[str, Any] = {"name": name, "parameters": params or {"type": "object"}}
        if description:
            fn["description"] = description
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(body: dict[str, Any]) -> Any:
    choice = body.get("tool_choice")
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("'tool_choice.name' must be a non-empty string", "tool_choice")
        return {"type": "function", "function": {"name": name}}
    raise bad_request(
        "'tool_choice' must be auto, none, required or {type: function, name}", "tool_choice"
    )


def _format(body: dict[str, Any]) -> dict[str, Any] | None:
    text = want_dict(body, "text")
    if text is None:
        return None
    fmt = want_dict(text, "format", "text", "text.format")
    if fmt is None:
        return None
    kind = fmt.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise bad_request("'text.format.schema' must be an object", "text")
        name = want_str(fmt, "name", "text", "text.format.name") or "response"
        spec: dict[str, Any] = {"name": name, "schema": schema}
        strict = want_bool(fmt, "strict", "text", "text.format.strict")
        if strict is not None:
            spec["strict"] = strict
        return {"type": "json_schema", "json_schema": spec}
    raise bad_request("'text.format.type' must be text, json_object or json_schema", "text")


def effort_of(body: dict[str, Any]) -> str | None:
    reasoning = want_dict(body, "reasoning")
    if reasoning is None:
        return None
    effort = want_str(reasoning, "effort", "reasoning", "reasoning.effort")
    want_str(reasoning, "summary", "reasoning", "reasoning.summary")
    if effort is not None and effort not in _EFFORT_TO_THINK:
        raise bad_request(
            f"'reasoning.effort' {effort!r} must be one of {', '.join(_EFFORT_TO_THINK)}",
            "reasoning",
        )
    return effort


def check_stateless(body: dict[str, Any]) -> None:
    for key in _STATEFUL:
        if body.get(key) is not None:
            raise bad_request(
                f"'{key}' is not supported: this gateway keeps no state; send the whole "
                "conversation in 'input'",
                key,
            )
    if want_bool(body, "store") is True:
        raise bad_request(
            "'store: true' is not supported: this gateway keeps no state (send store: false)",
            "store",
        )
    if want_bool(body, "background") is True:
        raise bad_request("'background: true' is not supported", "background")


def chat_request(body: dict[str, Any], for_ollama: bool) -> dict[str, Any]:
    """``/v1/responses`` body -> chat-completions body (for either backend kind)."""
    check_stateless(body)
    out: dict[str, Any] = {"model": body.get("model"), "messages": messages_of(body)}
    stream = want_bool(body, "stream") is True
    out["stream"] = stream
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not is_int(limit) or limit < 1:
            raise bad_request("'max_output_tokens' must be a positive integer", "max_output_tokens")
        out["max_tokens"] = limit
    for key in ("temperature", "top_p"):
        if want_number(body, key) is not None:
            out[key] = body[key]
    want_bool(body, "parallel_tool_calls")
    want_dict(body, "metadata")
    tools = _tools(body)
    choice = _tool_choice(body)
    if tools:
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
    fmt = _format(body)
    if fmt is not None:
        out["response_format"] = fmt
    effort = effort_of(body)
    if effort is not None:
        out["reasoning_effort"] = effort
    if stream and not for_ollama:
        out["stream_options"] = {"include_usage": True}
    return out


def echo_of(body: dict[str, Any]) -> dict[str, Any]:
    """The request fields a Response object repeats (checked already)."""
    text = body.get("text") if isinstance(body.get("text"), dict) else None
    fmt = (text or {}).get("format") or {"type": "text"}
    reasoning = body.get("reasoning")
    if not isinstance(reasoning, dict):
        reasoning = {}
    return {
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "text": {"format": fmt},
    }
