"""What every task store offers: one small async interface, three implementations.

A store keeps, per task, the public status document plus what ollamux needs around it:
the owner (the API key's name), the creation time (for "newest first") and an expiry.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One write: the status document of ``task_id`` as of now, owned by ``owner``."""

    task_id: str
    owner: str
    state: str
    created: float  # epoch seconds when the request arrived: the list order
    expires_at: float  # epoch seconds after which the task is gone
    doc: dict[str, Any]


class TaskStore(abc.ABC):
    """Where status documents live. Every method may raise when the store is down; the
    caller (the writer, the status routes) decides what that means."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect (and create the schema when needed)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections; safe to call twice."""

    @abc.abstractmethod
    async def put_many(self, records: list[TaskRecord]) -> None:
        """Write the latest document of each task. A task owned by another principal and
        not yet expired is left alone: an id can never be taken over by another key."""

    @abc.abstractmethod
    async def get(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        """``(owner, document)`` of a live task, or ``None`` when unknown or expired."""

    @abc.abstractmethod
    async def recent(
        self, owner: str | None, state: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` live documents, newest first; only ``owner``'s unless ``None``,
        only those in ``state`` unless ``None``."""

    @abc.abstractmethod
    async def sweep(self, now: float) -> int:
        """Delete what expired before ``now``; returns how many entries went away."""

    async def owner(self, task_id: str) -> str | None:
        """The owner of a live task, or ``None``."""
        found = await self.get(task_id)
        return found[0] if found is not None else None
