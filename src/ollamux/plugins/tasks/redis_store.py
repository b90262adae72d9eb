"""The Redis store: the status document under ``<prefix><task_id>`` with a TTL.

The document key and its JSON are the public contract (default prefix ``ts:ollama:``):
other programs read them directly. What ollamux needs besides lives under
``ollamux:idx:<prefix>``, outside that key space: ``owner:<task_id>`` (same TTL as the
document), ``recent`` (a sorted set of task ids by creation time) and ``recent:<owner>``.
Index entries whose document expired are dropped when a listing meets them and by the sweep.
Several ollamux instances sharing one Redis see each other's tasks.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .store import TaskRecord, TaskStore

# Write one task unless another owner holds it: document, owner, both indexes.
_PUT = """
local owner = redis.call('GET', KEYS[2])
if owner and owner ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[5])
return 1
"""

_PAGE = 200


class RedisStore(TaskStore):
    def __init__(self, url: str, prefix: str, horizon_s: float) -> None:
        self.url = url
        self.prefix = prefix
        self.aux = f"ollamux:idx:{prefix}"
        self.horizon_s = horizon_s  # no task outlives its creation by more than this
        self._redis: aioredis.Redis | None = None

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise ConnectionError("the task store is closed")
        return self._redis

    def doc_key(self, task_id: str) -> str:
        return self.prefix + task_id

    def _index(self, owner: str | None) -> str:
        return f"{self.aux}recent" if owner is None else f"{self.aux}recent:{owner}"

    async def open(self) -> None:
        # One immediate retry (a pooled connection may have gone stale); no long backoff:
        # a down store must answer fast so the status API can say 503.
        client = aioredis.Redis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 1),
        )
        self._redis = client
        self._put = client.register_script(_PUT)
        await client.ping()

    async def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    async def put_many(self, records: list[TaskRecord]) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in records:
                ttl_ms = max(1, int((r.expires_at - now) * 1000))
                await self._put(
                    keys=[
                        self.doc_key(r.task_id),
                        f"{self.aux}owner:{r.task_id}",
                        self._index(None),
                        self._index(r.owner),
                    ],
                    args=[r.owner, json.dumps(r.doc), ttl_ms, r.created, r.task_id],
                    client=pipe,
                )
            await pipe.execute()

    async def get(self, task_id: str) -> tuple[str, dict[str, Any]] | None:
        doc, owner = await self.redis.mget([self.doc_key(task_id), f"{self.aux}owner:{task_id}"])
        if doc is None:
            return None
        return str(owner or ""), json.loads(doc)

    async def owner(self, task_id: str) -> str | None:
        found = await self.redis.get(f"{self.aux}owner:{task_id}")
        return None if found is None else str(found)

    async def recent(
        self, owner: str | None, state: str | None, limit: int
    ) -> list[dict[str, Any]]:
        index = self._index(owner)
        found: list[dict[str, Any]] = []
        stale: list[str] = []
        start = 0
        while len(found) < limit:
            ids = [str(i) for i in await self.redis.zrevrange(index, start, start + _PAGE - 1)]
            if not ids:
                break
            start += len(ids)
            docs = await self.redis.mget([self.doc_key(i) for i in ids])
            for task_id, raw in zip(ids, docs, strict=True):
                if raw is None:
                    stale.append(task_id)
                    continue
                doc = json.loads(raw)
                if state is None or doc.get("state") == state:
                    found.append(doc)
                    if len(found) == limit:
                        break
        if stale:
            await self.redis.zrem(index, *stale)
        return found

    async def sweep(self, now: float) -> int:
        cutoff = now - self.horizon_s
        removed = 0
        async for key in self.redis.scan_iter(match=f"{self.aux}recent*", count=500):
            removed += int(await self.redis.zremrangebyscore(key, "-inf", cutoff))
        return removed
