"""The Redis store: the status document under ``<prefix><task_id>`` with a TTL.

The document key and its JSON are the public contract (default prefix ``ts:ollama:``):
other programs read them directly. What ollamux needs besides lives under
``ollamux:idx:<prefix>``, outside that key space: ``owner:<task_id>`` (same TTL as the
document), ``recent`` (a sorted set of task ids by creation time) and ``recent:<owner>``.
Index entries whose document expired are dropped when a listing meets them and by the sweep
(which drops entries created more than max(ttl_running_s, ttl_done_s) ago: a stream
running longer than that leaves the listings, though it can still be read by its id).
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

# Write a batch of tasks in one round trip and one command. KEYS[i] is task i's document;
# ARGV[1] is the index prefix (``ollamux:idx:<prefix>``) and, for each task i (1-based),
# ARGV[6i-4..6i+1] = task id, owner, document JSON, TTL in ms, creation time, "1" if the task
# (re)starts (PENDING). The owner key and the indexes are named here from the
# prefix, which keeps the arguments (and their encoding, per request) short. A task held by
# another owner is skipped. A task enters the indexes when it is new (no owner key yet) or
# starts over; later writes of the same task only replace the document and renew the TTLs.
_PUT = """
local aux = ARGV[1]
for i = 1, #KEYS do
  local a = i * 6 - 5
  local id, who, created = ARGV[a + 1], ARGV[a + 2], ARGV[a + 5]
  local owner_key = aux .. 'owner:' .. id
  local owner = redis.call('GET', owner_key)
  if not owner or owner == who then
    redis.call('SET', KEYS[i], ARGV[a + 3], 'PX', ARGV[a + 4])
    redis.call('SET', owner_key, who, 'PX', ARGV[a + 4])
    if not owner or ARGV[a + 6] == '1' then
      redis.call('ZADD', aux .. 'recent', created, id)
      redis.call('ZADD', aux .. 'recent:' .. who, created, id)
    end
  end
end
return 0
"""

_PAGE = 200  # index entries read per round trip when listing
_BATCH = 500  # tasks written per script call (keeps each call short for Redis)


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
        for start in range(0, len(records), _BATCH):
            await self._put_batch(records[start : start + _BATCH])

    async def _put_batch(self, records: list[TaskRecord]) -> None:
        now = time.time()
        prefix = self.prefix
        keys: list[str] = []
        args: list[str | int | float] = [self.aux]
        for r in records:
            keys.append(prefix + r.task_id)
            ttl_ms = max(1, int((r.expires_at - now) * 1000))
            starts = 1 if r.state == "PENDING" else 0
            args += [r.task_id, r.owner, r.text, ttl_ms, r.created, starts]
        await self._put(keys=keys, args=args)

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
