"""Per-key limits: rpm (token bucket, 429 + Retry-After) and requests in flight, per
instance or shared by every instance through the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.auth_support import ALICE, bearer, keyed
from tests.jobs_support import eventually

CHAT = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}


def limited(url: str, api: str = "ollama", **limits: Any) -> dict[str, Any]:
    key = {"name": "alice", "key": ALICE, **limits}
    return keyed(url, api=api, keys=[key])


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A prefix no other test run uses; its keys are deleted afterwards."""
    prefix = f"test-auth-{uuid.uuid4().hex}:"
    yield prefix
    r = aioredis.Redis.from_url(redis_url)
    keys = [k async for k in r.scan_iter(match=f"{prefix}*")]
    if keys:
        await r.delete(*keys)
    await r.aclose()


async def test_requests_over_rpm_get_429_with_retry_after(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(limited(url, rpm=2))
    statuses = [(await client.get("/api/tags", headers=bearer(ALICE))).status for _ in range(2)]
    assert statuses == [200, 200]
    resp = await client.get("/api/tags", headers=bearer(ALICE))
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert await resp.json() == {"error": "rate limit exceeded for this key"}


async def test_rpm_refusal_is_in_openai_dialect_on_v1(
    gateway_client: Any, fake_openai: Any
) -> None:
    _fake, url = fake_openai
    client = await gateway_client(limited(url, api="openai", rpm=1))
    await client.get("/v1/models", headers=bearer(ALICE))
    resp = await client.get("/v1/models", headers=bearer(ALICE))
    assert resp.status == 429
    error = (await resp.json())["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")


async def test_rpm_counts_submissions_to_plugin_routes(
    gateway_client: Any, fake_ollama: Any
) -> None:
    from tests.auth_support import PluginRoutes

    _fake, url = fake_ollama
    client = await gateway_client(limited(url, rpm=1), plugins=[("r", PluginRoutes())])
    assert (await client.post("/jobs", json={}, headers=bearer(ALICE))).status == 200
    assert (await client.post("/jobs", json={}, headers=bearer(ALICE))).status == 429
    # polling is not a submission: it does not spend the budget
    assert (await client.get("/jobs/j1", headers=bearer(ALICE))).status == 200


async def test_concurrency_limit_refuses_the_request_beyond_it(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"
    client = await gateway_client(limited(url, max_concurrency=1))
    first = asyncio.ensure_future(client.post("/api/chat", json=CHAT, headers=bearer(ALICE)))
    await asyncio.wait_for(fake.started.wait(), 10)
    second = await client.post("/api/chat", json=CHAT, headers=bearer(ALICE))
    assert second.status == 429
    assert await second.json() == {"error": "too many requests in flight for this key"}
    fake.release.set()
    resp = await first
    assert resp.status == 200
    await resp.read()
    fake.mode = "ok"
    third = await client.post("/api/chat", json=CHAT, headers=bearer(ALICE))
    assert third.status == 200


async def test_concurrency_slot_is_freed_when_the_client_goes_away(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "hang"
    client = await gateway_client(limited(url, max_concurrency=1))
    first = asyncio.ensure_future(client.post("/api/chat", json=CHAT, headers=bearer(ALICE)))
    await asyncio.wait_for(fake.started.wait(), 10)
    first.cancel()
    await asyncio.wait_for(fake.disconnected.wait(), 10)
    fake.mode = "ok"

    async def admitted() -> int:
        while True:
            resp = await client.post("/api/chat", json=CHAT, headers=bearer(ALICE))
            await resp.read()
            if resp.status != 429:
                return resp.status
            await asyncio.sleep(0.05)

    assert await asyncio.wait_for(admitted(), 10) == 200


async def test_rpm_is_shared_across_instances_through_redis(
    gateway_client: Any, fake_ollama: Any, redis_prefix: str, redis_url: str
) -> None:
    _fake, url = fake_ollama
    config = limited(url, rpm=2)
    config["auth"] |= {"redis_url": redis_url, "redis_prefix": redis_prefix}
    one = await gateway_client(config)
    two = await gateway_client(config)
    assert (await one.get("/api/tags", headers=bearer(ALICE))).status == 200
    assert (await two.get("/api/tags", headers=bearer(ALICE))).status == 200
    resp = await one.get("/api/tags", headers=bearer(ALICE))
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1


async def test_concurrency_is_shared_across_instances_through_redis(
    gateway_client: Any, fake_ollama: Any, redis_prefix: str, redis_url: str
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"
    config = limited(url, max_concurrency=1)
    config["auth"] |= {"redis_url": redis_url, "redis_prefix": redis_prefix}
    one = await gateway_client(config)
    two = await gateway_client(config)
    first = asyncio.ensure_future(one.post("/api/chat", json=CHAT, headers=bearer(ALICE)))
    await asyncio.wait_for(fake.started.wait(), 10)
    assert (await two.post("/api/chat", json=CHAT, headers=bearer(ALICE))).status == 429
    fake.release.set()
    await (await first).read()
    # The slot is given back when the first request finishes, just after its last byte.
    await _until_no_slot_in_redis(redis_url, f"{redis_prefix}inflight:alice")
    fake.mode = "ok"
    assert (await two.post("/api/chat", json=CHAT, headers=bearer(ALICE))).status == 200


async def _until_no_slot_in_redis(redis_url: str, key: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    try:
        await eventually(lambda: _is_empty(r, key), within_s=10)
    finally:
        await r.aclose()


async def _is_empty(r: aioredis.Redis, key: str) -> bool:
    return not await r.zcard(key)


async def test_unreachable_redis_refuses_with_503(gateway_client: Any, fake_ollama: Any) -> None:
    fake, url = fake_ollama
    config = limited(url, rpm=10)
    config["auth"] |= {"redis_url": "redis://127.0.0.1:1/0"}
    client = await gateway_client(config)
    resp = await client.post("/api/chat", json=CHAT, headers=bearer(ALICE))
    assert resp.status == 503
    assert resp.headers["Retry-After"] == "1"
    assert fake.received == []
