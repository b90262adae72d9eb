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

# Every count's name ends in ``_count"`` or ``_tokens"``; what comes before that suffix tells
# which count it is and the key it is reported under (Ollama's names, OpenAI's, the
# Responses API's).
_COUNT = b'_count"'
_COUNTS: tuple[tuple[bytes, str], ...] = (
    (b'"prompt_eval', "prompt_tokens"),
    (b'"eval', "completion_tokens"),
)
_TOKENS = b'_tokens"'
_TOKEN_COUNTS: tuple[tuple[bytes, str], ...] = (
    (b'"prompt', "prompt_tokens"),
    (b'"completion', "completion_tokens"),
    (b'"input', "prompt_tokens"),
    (b'"output', "completion_tokens"),
)
_VALUE = re.compile(rb"\s*:\s*(\d+)")


def parse_usage(tail: bytes, start: int = 0) -> dict[str, int]:
    """``{"prompt_tokens": n, "completion_tokens": m}``: for each, the count of the last
    of its names in ``tail[start:]`` that has one.

    Searched backwards from the end (the final line or event has the counts), by the two
    suffixes the names share: a short answer costs a few ``rfind`` over its last bytes, an
    answer without counts two scans of the tail."""
    found: dict[str, int] = {}
    count = tail.rfind(_COUNT, start)  # the next candidate of each suffix, going backwards
    tokens = tail.rfind(_TOKENS, start)
    while count >= 0 or tokens >= 0:
        if count > tokens:
            pos = count
            after = pos + len(_COUNT)
            count = tail.rfind(_COUNT, start, after - 1)
            names = _COUNTS
        else:
            pos = tokens
            after = pos + len(_TOKENS)
            tokens = tail.rfind(_TOKENS, start, after - 1)
            names = _TOKEN_COUNTS
        for name, key in names:
            begin = pos - len(name)
            # At most one name fits; one beginning before ``start`` is cut off: not seen.
            if begin >= start and tail.startswith(name, begin):
                if key not in found and (match := _VALUE.match(tail, after)) is not None:
                    found[key] = int(match.group(1))
                    if len(found) == 2:
                        return found
                break
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
        # Trimmed only once twice the tail is kept: most chunks cost an append and an add.
        if self._size >= 2 * TAIL_BYTES:
            while len(self._chunks) > 1 and self._size - len(self._chunks[0]) >= TAIL_BYTES:
                self._size -= len(self._chunks.popleft())
        return data

    def end(self) -> bytes:
        chunks = self._chunks
        # A one-chunk answer is searched in place; nothing is copied but a longer one's tail.
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.usage = parse_usage(body, max(0, len(body) - TAIL_BYTES))
        return b""
