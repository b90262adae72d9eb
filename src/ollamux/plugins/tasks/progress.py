"""How far a request has come, in its status document's ``extensions``.

While it waits for a backend: ``queue_position`` (1 = served next, from the balancer's wait
queue) and ``eta_ms`` (the balancer's average wait, when it has one). While it runs: the
backend, ``ttft_ms``, ``chunks`` and ``tokens`` (chunks so far: backends stream about one
token per chunk; the backend's own count once the answer ended). When done: Ollama's
figures (``load_ms``, ``prompt_eval_count``, ``prompt_eval_ms``, ``eval_count``,
``eval_ms``, ``total_ms``) or OpenAI's usage, and ``wait_ms`` (time spent queued).

The final figures are read from the answer's last bytes (``FinalLine``: two attribute
stores per chunk, one parse when the end state's document is made), never from the whole
body.
"""

from __future__ import annotations

import re

from ...dialect import Dialect
from ...exchange import Exchange
from ...transforms import ResponseTransform
from .document import quote

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
# Ollama's final line as Ollama writes it (its figures in this order, compact; a figure
# that is zero is left out), ending the answer: read with one match instead of a search
# per figure.
_OLLAMA_END = re.compile(
    rb'"total_duration":(\d+)(?:,"load_duration":(\d+))?(?:,"prompt_eval_count":(\d+))?'
    rb'(?:,"prompt_eval_duration":(\d+))?(?:,"eval_count":(\d+))?(?:,"eval_duration":(\d+))?'
    rb"\}\s*\Z"
)
# For a final line without some figures: each figure as the match's group index, its
# scale, and the names a search would read it from (in ``_FIGURES``' order of keys).
_MEMBERS = tuple(
    (index, key, scale, tuple(q for q, k, _ in _FIGURES if k == key))
    for index, key, scale in (
        (1, "load_ms", 1_000_000),
        (3, "prompt_eval_ms", 1_000_000),
        (5, "eval_ms", 1_000_000),
        (0, "total_ms", 1_000_000),
        (2, "prompt_eval_count", 1),
        (4, "eval_count", 1),
    )
)


_OLLAMA_TEXT = (
    ',"load_ms":%d,"prompt_eval_ms":%d,"eval_ms":%d,"total_ms":%d,'
    '"prompt_eval_count":%d,"eval_count":%d'
)


def parse_final(tail: bytes) -> FinalStats:
    """The last occurrence of each figure in ``tail`` (the answer's end)."""
    return read_final(tail)[0]


def read_final(tail: bytes) -> tuple[FinalStats, str]:
    """``parse_final``, and the figures as members of the document's ``extensions``."""
    start = tail.rfind(b'"total_duration":')
    match = _OLLAMA_END.match(tail, start) if start >= 0 else None
    if match is None:
        return _searched(tail)
    groups = match.groups()
    if None in groups:
        return _read_some(tail, groups)
    # The same figures as the search would find, read at once.
    total, load, prompt_count, prompt_ns, count, eval_ns = map(int, groups)
    found = {
        "load_ms": load // 1_000_000,
        "prompt_eval_ms": prompt_ns // 1_000_000,
        "eval_ms": eval_ns // 1_000_000,
        "total_ms": total // 1_000_000,
        "prompt_eval_count": prompt_count,
        "eval_count": count,
    }
    return found, _OLLAMA_TEXT % tuple(found.values())


def _searched(tail: bytes) -> tuple[FinalStats, str]:
    found = _search(tail)
    return found, "".join([f',"{key}":{value:d}' for key, value in found.items()])


def _read_some(tail: bytes, groups: tuple[bytes | None, ...]) -> tuple[FinalStats, str]:
    """``read_final`` of an Ollama final line that leaves figures out: the figures it has,
    as the search would find them; the search itself when ``tail`` names a missing one
    elsewhere."""
    found: FinalStats = {}
    for index, key, scale, names in _MEMBERS:
        value = groups[index]
        if value is not None:
            found[key] = int(value) // scale
            continue
        for name in names:
            if name in tail:
                return _searched(tail)
    keys = tuple(found)
    template = _TEMPLATES.get(keys)
    if template is None:
        template = _TEMPLATES[keys] = "".join([f',"{key}":%d' for key in keys])
    return found, template % tuple(found.values())


# The members' text for each set of figures a final line had (at most 64 sets).
_TEMPLATES: dict[tuple[str, ...], str] = {}


def _search(tail: bytes) -> FinalStats:
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
    """Passes the answer on untouched, keeping its last two chunks; the backend's figures
    are parsed from them when first asked for after the answer ended (``figures``)."""

    __slots__ = ("_last", "_prev", "_stats", "ended", "text")

    def __init__(self) -> None:
        self._prev = b""
        self._last = b""
        self._stats: FinalStats | None = None
        self.ended = False
        self.text = ""  # the figures as members of the document's extensions (JSON)

    def feed(self, data: bytes) -> bytes:
        self._prev = self._last
        self._last = data
        return data

    def end(self) -> bytes:
        self.ended = True
        return b""

    def figures(self) -> FinalStats | None:
        """The final figures once the answer ended (parsed once), else ``None``."""
        if not self.ended:
            return None
        if self._stats is None:
            tail = self._prev[-4096:] + self._last[-4096:] if self._prev else self._last[-4096:]
            self._stats, self.text = read_final(tail)
            self._prev = self._last = b""
        return self._stats


_COUNTS = ',"prompt_eval_count":%d,"eval_count":%d'


def _counted(exchange: Exchange) -> tuple[int, int] | None:
    """The token counts of an answer in OpenAI's dialect when a translation (or the
    metrics) noted them in ``exchange.usage``: the same two figures its end would give
    (such an answer has no durations), without reading it."""
    if exchange.dialect is not Dialect.OPENAI:
        return None
    usage = exchange.usage
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if type(prompt) is int and type(completion) is int:
        return prompt, completion
    return None


def progress_text(exchange: Exchange, final: FinalLine | None) -> str:
    """The progress members of the document's ``extensions`` (JSON text, each with its
    leading comma): where it waits, the final figures, the wait, the tokens, who cancelled."""
    parts = ""
    position = exchange.queue_position
    place = position() if position is not None else 0
    if place:  # 0: a backend was just handed over
        parts = f',"queue_position":{place:d}'
        avg = exchange.gateway.gauges.get("queue_wait_seconds_avg")
        if avg is not None:
            parts += f',"eta_ms":{int(avg() * 1000):d}'
    tokens = exchange.chunks
    counted = _counted(exchange) if final is not None else None
    if counted is not None:
        parts += _COUNTS % counted
        tokens = counted[1]
    elif final is not None and (figures := final.figures()):
        parts += final.text
        tokens = figures.get("eval_count", tokens)
    selected, routed = exchange.selected_at, exchange.routed_at
    if selected is not None and routed is not None:
        parts += f',"wait_ms":{int(max(0.0, selected - routed) * 1000):d}'
    parts += f',"tokens":{tokens:d}'
    if exchange.cancelled_by:
        parts += ',"cancelled_by":' + quote(exchange.cancelled_by)
    return parts
