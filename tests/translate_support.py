"""Shared piece of the tests of whole-answer translations: an Ollama backend's whole
answer through the transform an OpenAI client's request gets."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.exchange import ResponseHead
from ollamux.plugins.translate import ollama_to_openai_response as to_openai
from ollamux.plugins.translate.stream import OllamaToOpenAI, Raw, Whole


def whole_for_openai(
    body: bytes, whole: Whole, model: str, raw: Raw | None
) -> tuple[bytes, dict[str, int]]:
    """What an OpenAI client gets for the whole answer ``body`` (converted by ``raw``
    first when given, else by ``whole``), and the usage the translation recorded;
    ``BadUpstreamAnswer`` when the answer is refused."""
    ex: Any = SimpleNamespace(dialect=Dialect.OPENAI, usage={}, error="", outcome=None)
    transform = OllamaToOpenAI(ex, whole, to_openai.ChatStream(model), raw=raw)
    transform.head(ResponseHead(200, CIMultiDict({"Content-Type": "application/json"})))
    transform.feed(body)
    return transform.end(), ex.usage
