"""Helpers shared by the task-tracking tests (tests/test_tasks_*.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.redis_server import redis_url, running_url

MODEL = "llama3.2:latest"


async def wait_for_status(
    client: Any,
    task_id: str,
    check: Callable[[dict[str, Any]], bool],
    timeout_s: float = 10.0,
    **kwargs: Any,
) -> dict[str, Any]:
    """Poll ``GET /tasks/status/{task_id}`` until ``check(document)`` holds (or fail)."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        resp = await client.get(f"/tasks/status/{task_id}", **kwargs)
        last = (resp.status, await resp.text())
        if resp.status == 200:
            doc: dict[str, Any] = await resp.json()
            if check(doc):
                return doc
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} never matched; last answer {last}")


async def wait_for_state(client: Any, task_id: str, state: str, **kwargs: Any) -> dict[str, Any]:
    return await wait_for_status(client, task_id, lambda d: d["state"] == state, **kwargs)


async def wait_until(check: Callable[[], Any], timeout_s: float = 10.0) -> None:
    """Poll an async or plain predicate until it is true (or fail)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition never became true")


def store_config(store: str, tmp_path: Path, prefix: str, **extra: Any) -> dict[str, Any]:
    """A ``tasks`` section for ``store`` (sqlite file under tmp_path, redis under prefix)."""
    section: dict[str, Any] = {"store": store, **extra}
    if store == "sqlite":
        section["sqlite_path"] = str(tmp_path / "tasks.db")
    if store == "redis":
        section["redis_url"] = redis_url()
        section["redis_prefix"] = prefix
    return {"tasks": section}


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix of this test's own on the private Redis; its keys are deleted after."""
    prefix = f"test-{uuid.uuid4().hex[:12]}:ts:ollama:"
    yield prefix
    url = running_url()
    if url is None:  # no test started the private Redis: nothing to delete
        return
    client = aioredis.Redis.from_url(url)
    try:
        for pattern in (f"{prefix}*", f"ollamux:idx:{prefix}*"):
            keys = [k async for k in client.scan_iter(match=pattern, count=500)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


async def settle(client: Any) -> None:
    """Wait until the gateway's writer has stored every status filed so far."""
    from ollamux.plugins.tasks.routes import TRACKER
    from ollamux.testing import gateway_of

    app = gateway_of(client).app
    assert app is not None
    await app[TRACKER].writer.flush()
