"""The two API dialects ollamux speaks, and which one a path belongs to."""

from __future__ import annotations

import enum


class Dialect(enum.StrEnum):
    OLLAMA = "ollama"
    OPENAI = "openai"

    @classmethod
    def of_path(cls, path: str) -> Dialect:
        """``/v1/...`` is OpenAI; everything else (``/api/...``, ``/``) is Ollama."""
        return cls.OPENAI if path == "/v1" or path.startswith("/v1/") else cls.OLLAMA


NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
