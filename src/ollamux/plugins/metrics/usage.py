"""Token counts of a response, read cheaply from the tail of its body.

Ollama's last line carries ``prompt_eval_count`` / ``eval_count``; OpenAI's answer (or the
last event of a stream asked with ``include_usage``) carries ``prompt_tokens`` /
``completion_tokens``. ``UsageTransform`` passes every chunk through untouched and keeps
only the last few kilobytes, so a passthrough stream pays one list append per chunk; the
counts are searched once, when the body ends.
"""

from __future__ import annotations

import re
from collections import deque

from ...transforms import ResponseTransform

TAIL_BYTES = 8192

_COUNT = re.compile(
    rb'"(prompt_eval_count|eval_count|prompt_tokens|completion_tokens|input_tokens|output_tokens)"'
    rb"\s*:\s*(\d+)"
)
_IN = {b"prompt_eval_count", b"prompt_tokens", b"input_tokens"}


def parse_usage(tail: bytes) -> dict[str, int]:
    """``{"prompt_tokens": n, "completion_tokens": m}`` from the last counts in ``tail``."""
    found: dict[str, int] = {}
    for name, value in _COUNT.findall(tail):
        key = "prompt_tokens" if name in _IN else "completion_tokens"
        found[key] = int(value)  # later occurrences win: the final line/event
    return found


class UsageTransform(ResponseTransform):
    """Keeps the body's last ``TAIL_BYTES`` and parses token counts from them at the end."""

    __slots__ = ("_chunks", "_size", "usage")

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self.usage: dict[str, int] = {}

    def feed(self, data: bytes) -> bytes:
        self._chunks.append(data)
        self._size += len(data)
        while len(self._chunks) > 1 and self._size - len(self._chunks[0]) >= TAIL_BYTES:
            self._size -= len(self._chunks.popleft())
        return data

    def end(self) -> bytes:
        tail = b"".join(self._chunks)[-TAIL_BYTES:]
        self._chunks.clear()
        self.usage = parse_usage(tail)
        return b""
