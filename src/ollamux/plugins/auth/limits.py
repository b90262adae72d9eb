"""Per-key limits: requests per minute (a token bucket) and requests in flight at once.

``LocalLimits`` keeps the counters in this process. ``RedisLimits`` keeps them in Redis so
that every instance sharing it enforces one budget per key; both scripts run atomically in
Redis and read Redis's clock, so instances with skewed clocks still agree.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Protocol

import redis.asyncio as aioredis

from ...errors import GatewayError
from .keys import KeyEntry

# A slot taken in Redis is forgotten after this long even if its release never comes (an
# instance that crashed mid-request), so a crash cannot lock a key out for good.
REDIS_LEASE_S = 3600


class Limits(Protocol):
    async def take_token(self, entry: KeyEntry) -> float:
        """Spend one request of the key's rpm budget: 0 if allowed, else seconds to wait."""

    async def acquire(self, entry: KeyEntry) -> str | None:
        """Take one in-flight slot: a handle for ``release``, or ``None`` when all are taken."""

    async def release(self, entry: KeyEntry, handle: str) -> None: ...

    async def close(self) -> None: ...


def too_many(message: str, retry_after: float) -> GatewayError:
    return GatewayError(
        429,
        message,
        code="rate_limit_exceeded",
        headers={"Retry-After": str(max(1, math.ceil(retry_after)))},
    )


class LocalLimits:
    """Counters in this process: a token bucket and an in-flight count per key name."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, at)
        self._in_flight: dict[str, int] = {}

    async def take_token(self, entry: KeyEntry) -> float:
        rpm = entry.rpm
        name = entry.principal.name
        now = time.monotonic()
        tokens, at = self._buckets.get(name, (float(rpm), now))
        tokens = min(float(rpm), tokens + (now - at) * rpm / 60.0)
        if tokens >= 1.0:
            self._buckets[name] = (tokens - 1.0, now)
            return 0.0
        self._buckets[name] = (tokens, now)
        return (1.0 - tokens) * 60.0 / rpm

    async def acquire(self, entry: KeyEntry) -> str | None:
        name = entry.principal.name
        count = self._in_flight.get(name, 0)
        if count >= entry.max_concurrency:
            return None
        self._in_flight[name] = count + 1
        return name

    async def release(self, entry: KeyEntry, handle: str) -> None:
        name = entry.principal.name
        self._in_flight[name] = max(0, self._in_flight.get(name, 0) - 1)

    async def close(self) -> None:
        return None


_BUCKET = """
local rate = tonumber(ARGV[1]) / 60.0
local cap = tonumber(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or cap
local at = tonumber(v[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(cap / rate) + 1)
return tostring(wait)
"""

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]) + 1)
return 1
"""


class RedisLimits:
    """Counters in Redis, shared by every instance using the same URL and prefix.

    Redis being unreachable refuses the request (503): a limit that silently stops
    applying is worse than a clear error.
    """

    def __init__(self, url: str, prefix: str) -> None:
        self._redis = aioredis.Redis.from_url(url)
        self._prefix = prefix
        self._bucket = self._redis.register_script(_BUCKET)
        self._acquire = self._redis.register_script(_ACQUIRE)

    def _key(self, kind: str, entry: KeyEntry) -> str:
        return f"{self._prefix}{kind}:{entry.principal.name}"

    async def take_token(self, entry: KeyEntry) -> float:
        try:
            wait = await self._bucket(keys=[self._key("rpm", entry)], args=[entry.rpm])
        except aioredis.RedisError as exc:
            raise _unavailable() from exc
        return float(wait)

    async def acquire(self, entry: KeyEntry) -> str | None:
        handle = uuid.uuid4().hex
        try:
            ok = await self._acquire(
                keys=[self._key("inflight", entry)],
                args=[entry.max_concurrency, handle, REDIS_LEASE_S],
            )
        except aioredis.RedisError as exc:
            raise _unavailable() from exc
        return handle if ok else None

    async def release(self, entry: KeyEntry, handle: str) -> None:
        await self._redis.zrem(self._key("inflight", entry), handle)

    async def close(self) -> None:
        await self._redis.aclose()


def _unavailable() -> GatewayError:
    return GatewayError(503, "the shared rate limiter is unavailable", headers={"Retry-After": "1"})
