"""Several ``--workers`` processes open the same new SQLite files at once as they start."""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path
from typing import Any

from ollamux.plugins.jobs.sqlite_store import SqliteJobStore
from ollamux.plugins.tasks.sqlite_store import SqliteStore

ROUNDS = 15
PROCESSES = 3


async def _open_both(folder: Path) -> None:
    jobs, tasks = SqliteJobStore(str(folder / "jobs.db")), SqliteStore(str(folder / "tasks.db"))
    await jobs.open()
    await tasks.open()
    await jobs.close()
    await tasks.close()


def _worker(folder: Path, start: Any, results: Any) -> None:
    start.wait()
    try:
        asyncio.run(_open_both(folder))
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(repr(exc))


def test_workers_opening_the_same_new_databases_at_once_all_succeed(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    outcomes = []
    for i in range(ROUNDS):
        folder = tmp_path / str(i)
        start, results = ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [
            ctx.Process(target=_worker, args=(folder, start, results)) for _ in range(PROCESSES)
        ]
        for p in procs:
            p.start()
        outcomes += [results.get(timeout=30) for _ in procs]
        for p in procs:
            p.join(30)
    assert outcomes == ["ok"] * ROUNDS * PROCESSES
