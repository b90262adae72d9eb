"""Shared pieces of the SDK tests of the Messages and Responses fronts: one fake backend
of each kind, and a tool call scripted in that backend's own form."""

from __future__ import annotations

from typing import Any

MODELS = {"ollama": "llama3.2:latest", "openai": "qwen2.5-7b"}


async def front_gateway(
    gateway_client: Any, kind: str, fake_ollama: Any, fake_openai: Any
) -> tuple[Any, Any, str]:
    """(a gateway client in front of the fake backend of ``kind``, that fake, its model)."""
    fake, url = fake_ollama if kind == "ollama" else fake_openai
    client = await gateway_client({"backends": [{"url": url, "api": kind}]})
    return client, fake, MODELS[kind]


def script_tool_call(fake: Any, kind: str) -> None:
    """Make ``fake`` answer with one ``get_weather(city="Paris")`` call."""
    if kind == "ollama":
        fake.tool_calls = [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]
    else:
        fake.tool_calls = [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ]
