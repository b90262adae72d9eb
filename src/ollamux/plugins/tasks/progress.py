"""How far a request has come, in its status document's ``extensions``.

While it waits for a backend: ``queue_position`` (1 = served next, from the balancer's wait
queue) and ``eta_ms`` (the balancer's average wait, when it has one). While it runs: the
backend, ``ttft_ms``, ``chunks`` and ``tokens`` (chunks so far: backends stream about one
token per chunk; the backend's own count once the answer ended). When done: Ollama's
figures (``load_ms``, ``prompt_eval_count``, ``prompt_eval_ms``, ``eval_count``,
``eval_ms``, ``total_ms``) or OpenAI's usage, and ``wait_ms`` (time spent queued).

The final figures are read from the answer's last bytes (``FinalLine``: two attribute
stores per chunk, one parse at the end), never from the whole body.
"""

from __future__ import annotations

import re
from typing import Any

from ...exchange import Exchange
from ...transforms import ResponseTransform

FinalStats = dict[str, int]

# Ollama's final line (nanoseconds and counts) and OpenAI's usage, as they appear in JSON.
_FIGURES = (
    (b'"load_duration"', "load_ms", 1_000_000),
    (b'"prompt_eval_duration"', "prompt_eval_ms", 1_000_000),
    (b'"eval_duration"', "eval_ms", 1_000_000),
    (b'"total_duration"', "total_ms", 1_000_000),
    (b'"prompt_eval_count"', "prompt_eval_count", 1),
    (b'"eval_count"', "eval_count", 1),
    (b'"prompt_tokens"', "prompt_eval_count", 1),
    (b'"completion_tokens"', "eval_count", 1),
)
_NUMBER = re.compile(rb"\s*:\s*(\d+)")


def parse_final(tail: bytes) -> FinalStats:
    """The last occurrence of each figure in ``tail`` (the answer's end)."""
    found: FinalStats = {}
    for quoted, key, scale in _FIGURES:
        if key in found:
            continue
        pos = tail.rfind(quoted)
        if pos < 0:
            continue
        match = _NUMBER.match(tail, pos + len(quoted))
        if match is not None:
            found[key] = int(match.group(1)) // scale
    return found


class FinalLine(ResponseTransform):
    """Passes the answer on untouched, keeping its last two chunks; parses the backend's
    figures from them into ``stats`` when the answer ends."""

    __slots__ = ("_last", "_prev", "stats")

    def __init__(self) -> None:
        self._prev = b""
        self._last = b""
        self.stats: FinalStats = {}

    def feed(self, data: bytes) -> bytes:
        self._prev = self._last
        self._last = data
        return data

    def end(self) -> bytes:
        self.stats.update(parse_final(self._prev[-4096:] + self._last[-4096:]))
        return b""


def extend(ext: dict[str, Any], exchange: Exchange, final: FinalStats | None) -> None:
    """Add the progress figures of ``exchange`` to its document's ``extensions``."""
    position = exchange.queue_position
    place = position() if position is not None else 0
    if place:  # 0: a backend was just handed over
        ext["queue_position"] = place
        avg = exchange.gateway.gauges.get("queue_wait_seconds_avg")
        if avg is not None:
            ext["eta_ms"] = int(avg() * 1000)
    tokens = exchange.chunks
    if final:
        ext.update(final)
        tokens = final.get("eval_count", tokens)
    if exchange.selected_at is not None and exchange.routed_at is not None:
        ext["wait_ms"] = int(max(0.0, exchange.selected_at - exchange.routed_at) * 1000)
    ext["tokens"] = tokens
    if exchange.cancelled_by:
        ext["cancelled_by"] = exchange.cancelled_by
