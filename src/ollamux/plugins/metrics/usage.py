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

# Each count's name (as it appears quoted in JSON) and the key it is reported under;
# Ollama's first, then OpenAI's, then the Responses API's.
_NAMES = tuple(
    (b'"' + name + b'"', key)
    for name, key in (
        (b"prompt_eval_count", "prompt_tokens"),
        (b"eval_count", "completion_tokens"),
        (b"prompt_tokens", "prompt_tokens"),
        (b"completion_tokens", "completion_tokens"),
        (b"input_tokens", "prompt_tokens"),
        (b"output_tokens", "completion_tokens"),
    )
)
_VALUE = re.compile(rb"\s*:\s*(\d+)")


def parse_usage(tail: bytes) -> dict[str, int]:
    """``{"prompt_tokens": n, "completion_tokens": m}`` from the last counts in ``tail``.

    Searched from the end (the final line or event has them): a few ``rfind`` calls
    instead of a regular expression over the whole tail, several times cheaper for a
    stream's 8 KB."""
    found: dict[str, tuple[int, int]] = {}  # key -> (position, count)
    for quoted, key in _NAMES:
        # Only an occurrence after the one already found for this key could win.
        start = found[key][0] + 1 if key in found else 0
        end = len(tail)
        while (pos := tail.rfind(quoted, start, end)) >= 0:
            match = _VALUE.match(tail, pos + len(quoted))
            if match is not None:
                found[key] = (pos, int(match.group(1)))
                break
            end = pos + len(quoted) - 1  # an earlier occurrence may still have a count
    return {key: count for key, (_, count) in found.items()}


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
        # Trimmed only once twice the tail is kept: most chunks cost an append and an add.
        if self._size >= 2 * TAIL_BYTES:
            while len(self._chunks) > 1 and self._size - len(self._chunks[0]) >= TAIL_BYTES:
                self._size -= len(self._chunks.popleft())
        return data

    def end(self) -> bytes:
        tail = b"".join(self._chunks)[-TAIL_BYTES:]
        self._chunks.clear()
        self.usage = parse_usage(tail)
        return b""
