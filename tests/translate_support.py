"""Shared pieces of the tests of whole-answer translations: a backend's whole answer
through the transform a client of the other dialect gets."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.exchange import ResponseHead
from ollamux.plugins.translate import ollama_to_openai_response as to_openai
from ollamux.plugins.translate import openai_to_ollama_response as to_ollama
from ollamux.plugins.translate.stream import OllamaToOpenAI, OpenAIToOllama, Raw, Whole
from ollamux.transforms import BadUpstreamAnswer


def whole_for_openai(
    body: bytes, whole: Whole, model: str, raw: Raw | None
) -> tuple[bytes, dict[str, int]]:
    """What an OpenAI client gets for the whole answer ``body`` (converted by ``raw``
    first when given, else by ``whole``), and the usage the translation recorded;
    ``BadUpstreamAnswer`` when the answer is refused."""
    ex: Any = SimpleNamespace(dialect=Dialect.OPENAI, usage={}, error="", outcome=None)
    return _whole(OllamaToOpenAI(ex, whole, to_openai.ChatStream(model), raw=raw), body)


def whole_for_ollama(
    body: bytes, whole: Whole, model: str, raw: Raw | None
) -> tuple[bytes, dict[str, int]]:
    """``whole_for_openai`` the other way: an OpenAI server's answer for an Ollama client."""
    ex: Any = SimpleNamespace(dialect=Dialect.OLLAMA, usage={}, error="", outcome=None)
    return _whole(OpenAIToOllama(ex, whole, to_ollama.ChatStream(model), raw=raw), body)


def _whole(transform: OllamaToOpenAI | OpenAIToOllama, body: bytes) -> tuple[bytes, dict[str, int]]:
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": "application/json"})))
    transform.feed(body)
    return transform.end(), transform.exchange.usage


def same_either_way(answer: Callable[[bool], Any]) -> None:
    """``answer(fast)`` is the same with the bytes path (``True``) as with the parsing path:
    the same answer, or a refusal (``BadUpstreamAnswer``) from both."""
    try:
        slow = answer(False)
    except BadUpstreamAnswer:
        with pytest.raises(BadUpstreamAnswer):
            answer(True)
        return
    assert answer(True) == slow
