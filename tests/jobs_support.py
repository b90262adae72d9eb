"""Shared helpers for the jobs tests: polling with a deadline, reading a job's document."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp.test_utils import TestClient


async def eventually(check: Callable[[], Awaitable[Any]], within_s: float = 15.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail after ``within_s`` seconds."""
    deadline = time.monotonic() + within_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within_s}s (last: {value!r})")
        await asyncio.sleep(0.02)


async def job_doc(client: TestClient[Any, Any], job_id: str) -> dict[str, Any]:
    resp = await client.get(f"/jobs/{job_id}")
    assert resp.status == 200, await resp.text()
    doc: dict[str, Any] = await resp.json()
    return doc


async def wait_status(client: TestClient[Any, Any], job_id: str, *states: str) -> dict[str, Any]:
    """The job's document once its status is one of ``states``."""

    async def check() -> dict[str, Any] | None:
        doc = await job_doc(client, job_id)
        return doc if doc["status"] in states else None

    result: dict[str, Any] = await eventually(check)
    return result
