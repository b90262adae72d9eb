"""What every task store offers: one small async interface, three implementations.

A store keeps, per task, the public status document plus what ollamux needs around it:
the owner (the API key's name), the creation time (for "newest first") and an expiry.
"""

from __future__ import annotations

import abc
import json
from typing import Any


class TaskRecord:
    """One write: the status document of ``task_id`` as of now, owned by ``owner``.

    The document is held as a dict, as its JSON text, or both: each is made from the other
    only when asked for (``doc`` / ``text``), and then once. A store that keeps text (SQLite,
    Redis) never builds the dict of a record nobody reads; see ``document.py``."""

    __slots__ = ("_doc", "_text", "created", "expires_at", "owner", "state", "task_id")

    def __init__(
        self,
        task_id: str,
        owner: str,
        state: str,
        created: float,  # epoch seconds when the request arrived: the list order
        expires_at: float,  # epoch seconds after which the task is gone
        doc: dict[str, Any] | None = None,
        text: str | None = None,
    ) -> None:
        if doc is None and text is None:
            raise ValueError("a task record needs its document")
        self.task_id = task_id
        self.owner = owner
        self.state = state
        self.created = created
        self.expires_at = expires_at
        self._doc = doc
        self._text = text

    @property
    def doc(self) -> dict[str, Any]:
        """The status document (decoded from ``text`` the first time it is asked for)."""
        if self._doc is None:
            self._doc = json.loads(self._text)  # type: ignore[arg-type]
        return self._doc

    @property
    def text(self) -> str:
        """The status document as compact JSON (encoded the first time it is asked for)."""
        if self._text is None:
            self._text = json.dumps(self._doc, separators=(",", ":"))
        return self._text

    def __repr__(self) -> str:
        return f"TaskRecord({self.task_id!r}, {self.owner!r}, {self.state!r})"


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
