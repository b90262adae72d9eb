"""Task ids and the task status document (the shape in DESIGN.md, "Task status document")."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from json.encoder import encode_basestring_ascii

from ...exchange import Exchange, random16

MAX_TASK_ID = 128
_TASK_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# (state, stage) pairs a task goes through.
QUEUED = ("PENDING", "queued")
FORWARDED = ("RUNNING", "forwarded")
STREAMING = ("RUNNING", "streaming")
COMPLETED = ("SUCCESS", "completed")
FAILED = ("FAILED", "failed")
CANCELLED = ("CANCELLED", "cancelled")

LIVE_STATES = frozenset({"PENDING", "RUNNING"})
STATES = frozenset({"PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"})


class _EventIds:
    """Event ids: UUID-shaped (version 4, RFC variant) and unique, made cheaply.

    A document is written several times per request, and a random UUID per write was a
    tenth of the tasks plugin's CPU. An id is a random per-process prefix (60 random bits)
    and a counter starting at a random point; a forked child draws a new prefix."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        h = random16().hex()
        self._prefix = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-"
        self._counter = itertools.count(int(h[20:], 16))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


new_event_id = _EventIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=new_event_id.reset)


def is_valid_task_id(task_id: str) -> bool:
    """1 to 128 characters from ``A-Z a-z 0-9 . _ : -``: safe as a key and in a URL."""
    return _TASK_ID.fullmatch(task_id) is not None


# The document as compact JSON, written directly (the shape in DESIGN.md): a dict built and
# encoded by ``json`` cost about three times as much, and most documents (a short request's
# end state) are only ever written, never read back here. ``%s`` slots take JSON values.
_TEXT = (
    '{"version":"1.0","event_type":"task.status.update","event_id":"%s",'
    '"algorithm_id":"ollama-openai","task_id":%s,"state":%s,"stage":%s,"message":%s,'
    '"extensions":{"method":%s,"path":%s,"stream":%s,"model":%s,"backend":%s,"chunks":%d,'
    '"ttft_ms":%s,"queued_ms":%s,"attempts":%d,"status":%s%s},"timestamp":%d}'
)
# JSON strings exactly as ``json.dumps`` writes them (ASCII, escaped).
quote: Callable[[str], str] = encode_basestring_ascii


def _value(value: str | None) -> str:
    return "null" if value is None else quote(value)


def status_text(
    exchange: Exchange,
    state: str,
    stage: str,
    message: str,
    progress: str,
    now: float,
) -> str:
    """The public status document of ``exchange`` as of ``now`` (epoch seconds), as JSON
    text; ``progress``: the further ``extensions`` members (``progress.progress_text``)."""
    started = exchange.started_at
    forwarded = exchange.selected_at or exchange.forwarded_at
    first = exchange.first_chunk_at
    backend = exchange.backend
    return _TEXT % (
        new_event_id(),
        quote(exchange.task_id),
        quote(state),
        quote(stage),
        quote(message),
        quote(exchange.method),
        quote(exchange.path),
        "true" if exchange.stream else "false",
        _value(exchange.model),
        "null" if backend is None else quote(backend.name),
        exchange.chunks,
        "null" if first is None else int((first - started) * 1000),
        "null" if forwarded is None else int((forwarded - started) * 1000),
        exchange.attempts,
        exchange.status or "null",
        progress,
        int(now),
    )
