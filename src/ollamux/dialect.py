"""The API dialects ollamux speaks, and which one a path belongs to."""

from __future__ import annotations

import enum


class Dialect(enum.StrEnum):
    OLLAMA = "ollama"
    OPENAI = "openai"
    ANTHROPIC = "anthropic"  # a client dialect only (Messages API): no backend speaks it

    @classmethod
    def of_path(cls, path: str) -> Dialect:
        """``/v1/messages*`` is Anthropic; other ``/v1/...`` is OpenAI; everything else
        (``/api/...``, ``/``) is Ollama."""
        if path == "/v1" or path.startswith("/v1/"):
            if path == "/v1/messages" or path.startswith("/v1/messages/"):
                return cls.ANTHROPIC
            return cls.OPENAI
        return cls.OLLAMA


NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
