"""Task ids are time-ordered version-7 UUIDs in their canonical text form."""

from __future__ import annotations

import threading
import time
import uuid

from ollamux.exchange import new_task_id


def test_task_id_is_a_canonical_version_7_uuid() -> None:
    for _ in range(200):
        text = new_task_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_task_id_starts_with_the_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    made = int(uuid.UUID(new_task_id()).hex[:12], 16)
    assert before <= made <= time.time_ns() // 1_000_000


def test_task_ids_made_later_sort_later() -> None:
    first = new_task_id()
    deadline = time.monotonic() + 1
    while (later := new_task_id())[:13] == first[:13] and time.monotonic() < deadline:
        pass  # the next millisecond
    assert later > first


def test_task_ids_do_not_repeat() -> None:
    assert len({new_task_id() for _ in range(10_000)}) == 10_000


def test_task_ids_made_in_several_threads_at_once_do_not_repeat() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def make(into: list[str]) -> None:
        into.extend(new_task_id() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(into,)) for into in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({i for ids in made for i in ids}) == 20_000
