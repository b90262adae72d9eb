"""What every task store offers: one small async interface, three implementations.

A store keeps, per task, the public status document plus what ollamux needs around it:
the owner (the API key's name), the creation time (for "newest first") and an expiry.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any


class TaskRecord:
    """One write: the status document of ``task_id``, owned by ``owner``.

    The document is made by ``render`` when first asked for (normally by the store, as it
    is written): a record replaced by a newer one before the writer runs costs no
    rendering. Pass a ready ``dict`` when there is nothing to defer.
    """

    __slots__ = ("_doc", "_render", "created", "expires_at", "owner", "state", "task_id")

    def __init__(
        self,
        task_id: str,
        owner: str,
        state: str,
        created: float,
        expires_at: float,
        doc: dict[str, Any] | Callable[[], dict[str, Any]],
    ) -> None:
        self.task_id = task_id
        self.owner = owner
        self.state = state
        self.created = created  # epoch seconds when the request arrived: the list order
        self.expires_at = expires_at  # epoch seconds after which the task is gone
        self._doc = doc if isinstance(doc, dict) else None
        self._render = None if isinstance(doc, dict) else doc

    @property
    def doc(self) -> dict[str, Any]:
        if self._doc is None:
            assert self._render is not None
            self._doc, self._render = self._render(), None
        return self._doc


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
