"""What a job is: its states, its stored record, and the document clients see."""

from __future__ import annotations

import enum
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


# Priorities are clamped to this range so a queue score (priority, then arrival) stays exact.
PRIORITY_LIMIT = 1000


@dataclass
class Job:
    """One job as stored. ``token`` names the claim of the worker running it."""

    path: str
    body: dict[str, Any]
    owner: str = "anonymous"
    priority: int = 0
    kind: str = "job"  # "prompt" when submitted through the simple form
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: JobStatus = JobStatus.QUEUED
    created_at: float = field(default_factory=time.time)
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    backend: str = ""
    error: str = ""
    result: Any = None
    token: str = ""

    def __post_init__(self) -> None:
        self.updated_at = self.updated_at or self.created_at
        self.priority = max(-PRIORITY_LIMIT, min(PRIORITY_LIMIT, self.priority))

    @property
    def model(self) -> str:
        model = self.body.get("model")
        return model if isinstance(model, str) else ""

    def describe(self) -> dict[str, Any]:
        """The status document of ``GET /jobs/{id}`` (no body, no result)."""
        return {
            "id": self.id,
            "status": str(self.status),
            "path": self.path,
            "model": self.model,
            "priority": self.priority,
            "owner": self.owner,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "attempts": self.attempts,
            "backend": self.backend or None,
            "error": self.error or None,
        }


def iso(ts: float | None) -> str | None:
    """A UNIX time as ISO 8601 UTC with milliseconds (``None`` stays ``None``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
