"""Task ids and the task status document (the shape in DESIGN.md, "Task status document")."""

from __future__ import annotations

import re
import time
from typing import Any

from ...exchange import Exchange, new_task_id

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


def is_valid_task_id(task_id: str) -> bool:
    """1 to 128 characters from ``A-Z a-z 0-9 . _ : -``: safe as a key and in a URL."""
    return _TASK_ID.fullmatch(task_id) is not None


def status_document(
    exchange: Exchange,
    state: str,
    stage: str,
    message: str,
    selected_at: float | None,
    now: float | None = None,
) -> dict[str, Any]:
    """The public status document of ``exchange`` as of now (``selected_at``: when a
    backend was chosen, the end of the queueing; ``now``: the epoch time, when the caller
    read the clock already). One dict literal: this runs once per request."""
    started = exchange.started_at
    forwarded = selected_at or exchange.forwarded_at
    first = exchange.first_chunk_at
    backend = exchange.backend
    return {
        "version": "1.0",
        "event_type": "task.status.update",
        "event_id": new_task_id(),
        "algorithm_id": "ollama-openai",
        "task_id": exchange.task_id,
        "state": state,
        "stage": stage,
        "message": message,
        "extensions": {
            "method": exchange.method,
            "path": exchange.path,
            "stream": exchange.stream,
            "model": exchange.model,
            "backend": backend.name if backend is not None else None,
            "chunks": exchange.chunks,
            "ttft_ms": None if first is None else int((first - started) * 1000),
            "queued_ms": None if forwarded is None else int((forwarded - started) * 1000),
            "attempts": exchange.attempts,
            "status": exchange.status or None,
        },
        "timestamp": int(time.time() if now is None else now),
    }
