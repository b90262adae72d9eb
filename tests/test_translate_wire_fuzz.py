"""Through a real gateway: bodies with wrong types and deep nesting in the fields the
translations read never get a 5xx (a fixed, seeded sample, so the run is quick and
repeatable; the Hypothesis tests in test_translate_fuzz.py search the converters)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.fakes.ollama_backend import Scripted
from tests.test_translate_fuzz import (
    OA_CHAT,
    OA_CHAT_PATHS,
    OA_COMPLETION,
    OA_COMPLETION_PATHS,
    OA_EMBED,
    OA_EMBED_PATHS,
    OL_CHAT,
    OL_CHAT_PATHS,
    OL_EMBED,
    OL_EMBED_PATHS,
    OL_GENERATE,
    OL_GENERATE_PATHS,
    _replace,
    deep,
)

NASTY: list[Any] = [None, True, -1, 1.5, "", "ünï", [], {}, [1], {"a": []}, deep(300), "x" * 5000]
ENDPOINTS = [
    ("ollama", "/v1/chat/completions", OA_CHAT, OA_CHAT_PATHS),
    ("ollama", "/v1/completions", OA_COMPLETION, OA_COMPLETION_PATHS),
    ("ollama", "/v1/embeddings", OA_EMBED, OA_EMBED_PATHS),
    ("openai", "/api/chat", OL_CHAT, OL_CHAT_PATHS),
    ("openai", "/api/generate", OL_GENERATE, OL_GENERATE_PATHS),
    ("openai", "/api/embed", OL_EMBED, OL_EMBED_PATHS),
]


def _sample(seed: int, count: int) -> list[tuple[Any, ...]]:
    rng = random.Random(seed)
    return [(path, rng.choice(NASTY)) for path in rng.choices(list(range(100)), k=count)]


@pytest.mark.parametrize(("api", "path", "base", "paths"), ENDPOINTS, ids=[e[1] for e in ENDPOINTS])
async def test_no_5xx_for_wrong_types_through_the_gateway(
    gateway_client: Any,
    aiohttp_server: Any,
    api: str,
    path: str,
    base: dict[str, Any],
    paths: list[Any],
) -> None:
    fake = Scripted(status=500, pieces=[b'{"error": "the backend was called"}'])
    server = await aiohttp_server(fake.app())
    url = str(server.make_url("")).rstrip("/")
    client = await gateway_client(
        {"backends": [{"url": url, "api": api}], "routing": {"retries": 0}}
    )
    model = "m:latest" if api == "ollama" else "m"
    for index, value in _sample(len(path), 40):
        field = paths[index % len(paths)]
        body = {**_replace(base, field, value), "model": model}
        resp = await client.post(path, json=body)
        text = await resp.text()
        # 500 here is the scripted backend's own answer (the request was translated);
        # anything else in 5xx would be the gateway failing
        assert resp.status < 500 or "the backend was called" in text, (field, value, text)
