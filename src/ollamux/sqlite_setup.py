"""One process at a time switches a shared SQLite file to WAL and creates its tables.

Two processes opening the same new file at once (``--workers N``: every worker opens the
jobs and tasks databases as it starts) can both try ``PRAGMA journal_mode=WAL`` and the
schema; SQLite then answers one of them "database is locked" at once, without waiting
for its busy timeout (it would deadlock otherwise), and that worker died at start. An
exclusive ``flock`` on a lock file next to the database makes them take turns: the second
waits until the first is done, then finds WAL and the tables already there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def setup_lock(db_path: str | Path) -> Iterator[None]:
    """Hold ``<db_path>.setup-lock`` exclusively (blocking) for the ``with`` block."""
    fd = os.open(f"{db_path}.setup-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
