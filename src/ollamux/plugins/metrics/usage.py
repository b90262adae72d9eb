"""Token counts of a response, read cheaply from the tail of its body.

Ollama's last line carries ``prompt_eval_count`` / ``eval_count``; OpenAI's answer (or the
last event of a stream asked with ``include_usage``) carries ``prompt_tokens`` /
``completion_tokens``. ``UsageTransform`` passes every chunk through untouched and keeps
only the last few kilobytes, so a passthrough stream pays an append and an addition per
chunk; the counts are searched once, when the body ends.
"""

from __future__ import annotations

import re

from ...transforms import ResponseTransform

TAIL_BYTES = 8192

# Each count's name, as it appears in JSON, with its number; and the key it is reported
# under (Ollama's names, OpenAI's, the Responses API's).
_COUNT = re.compile(
    rb'"(prompt_eval_count|eval_count|prompt_tokens|completion_tokens|input_tokens|output_tokens)"'
    rb"\s*:\s*(\d+)"
)
_KEYS = {
    b"prompt_eval_count": "prompt_tokens",
    b"eval_count": "completion_tokens",
    b"prompt_tokens": "prompt_tokens",
    b"completion_tokens": "completion_tokens",
    b"input_tokens": "prompt_tokens",
    b"output_tokens": "completion_tokens",
}
# The last bytes searched first: the final line or event, where the counts are.
NEAR_BYTES = 512


def parse_usage(tail: bytes, start: int = 0) -> dict[str, int]:
    """``{"prompt_tokens": n, "completion_tokens": m}``: for each, the number of the last
    of its names in ``tail[start:]`` that has one.

    The last ``NEAR_BYTES`` are searched first; the rest only when a count is still
    missing. One regular expression scan finds every name with its number (an answer
    without counts, like an embedding, costs one scan of its tail)."""
    near = max(start, len(tail) - NEAR_BYTES)
    found = _counts(tail, near)
    if len(found) < 2 and near > start:
        found = _counts(tail, start)
    return found


def _counts(tail: bytes, start: int) -> dict[str, int]:
    found: dict[str, int] = {}
    for name, number in _COUNT.findall(tail, start):
        found[_KEYS[name]] = int(number)  # a later one replaces an earlier one
    return found


class UsageTransform(ResponseTransform):
    """Keeps the body's last ``TAIL_BYTES``; the token counts are parsed from them when
    first asked for after the end (``usage``): not at all when a translation counted them
    (``exchange.usage``)."""

    __slots__ = ("_chunks", "_ended", "_size", "_usage")

    def __init__(self) -> None:
        self._chunks: list[bytes] = []
        self._size = 0
        self._ended = False
        self._usage: dict[str, int] | None = None

    def feed(self, data: bytes) -> bytes:
        self._chunks.append(data)
        self._size += len(data)
        # Trimmed only once twice the tail is kept: most chunks cost an append and an add.
        if self._size >= 2 * TAIL_BYTES:
            self._trim()
        return data

    def _trim(self) -> None:
        """Drop the oldest chunks the last ``TAIL_BYTES`` do not need."""
        chunks = self._chunks
        size = self._size
        drop = 0
        while drop < len(chunks) - 1 and size - len(chunks[drop]) >= TAIL_BYTES:
            size -= len(chunks[drop])
            drop += 1
        del chunks[:drop]
        self._size = size

    @property
    def usage(self) -> dict[str, int]:
        """The counts the body's tail gave (none before the body ended)."""
        if self._usage is None:
            if not self._ended:
                return {}
            chunks = self._chunks
            # A one-chunk answer is searched in place; only a longer one's tail is copied.
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self._usage = parse_usage(body, max(0, len(body) - TAIL_BYTES))
        return self._usage

    def end(self) -> bytes:
        self._ended = True
        return b""
