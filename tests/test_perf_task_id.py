"""Task ids are random version-4 UUIDs in their canonical text form."""

from __future__ import annotations

import uuid

from ollamux.exchange import new_task_id


def test_task_id_is_a_canonical_random_uuid() -> None:
    for _ in range(200):
        text = new_task_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_task_ids_do_not_repeat() -> None:
    assert len({new_task_id() for _ in range(1000)}) == 1000
