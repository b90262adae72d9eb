"""Jobs in Redis, shared by every gateway instance pointing at the same server.

Each job is a hash ``<prefix>job:<id>``. The queue is the sorted set ``<prefix>queue``
(score: priority, then arrival), claimed jobs sit in ``<prefix>running`` scored by their
lease expiry, and listings read sorted sets by arrival (``all``, ``status:<s>``,
``owner:<o>``, ``owner:<o>:status:<s>``); ended jobs are also in ``<prefix>done``, scored
by their end time (ms), for expiry. Every state change is one Lua script, so it is atomic
across instances. A worker renews its lease while it runs a job; a job whose lease expired
(its gateway died) is handed back by whichever instance calls ``recover`` next.
"""

from __future__ import annotations

import builtins
import json
import time
from typing import Any, cast

import redis.asyncio as aioredis

from .model import PRIORITY_LIMIT, Job, JobStatus
from .store import JobStore, Page, StoreUnavailable

# Shared Lua: move a job between the status-indexed sorted sets.
_MOVE = """
local function move(p, id, owner, seq, from, to)
  if from then
    redis.call('ZREM', p .. 'status:' .. from, id)
    redis.call('ZREM', p .. 'owner:' .. owner .. ':status:' .. from, id)
  end
  redis.call('ZADD', p .. 'status:' .. to, seq, id)
  redis.call('ZADD', p .. 'owner:' .. owner .. ':status:' .. to, seq, id)
end
local p = KEYS[1]
"""

_SUBMIT = (
    _MOVE
    + """
if redis.call('ZCARD', p .. 'queue') >= tonumber(ARGV[1]) then return 0 end
local id, owner, priority = ARGV[2], ARGV[3], tonumber(ARGV[4])
local seq = redis.call('INCR', p .. 'seq')
-- Lower scores are claimed first: higher priority, then earlier arrival. Exact: below 2^53,
-- and Redis turns Lua numbers into strings without losing digits.
local score = (LIMIT - priority) * 1e12 + seq
local key = p .. 'job:' .. id
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', key, 'seq', seq, 'score', score, unpack(fields))
redis.call('ZADD', p .. 'queue', score, id)
redis.call('ZADD', p .. 'all', seq, id)
redis.call('ZADD', p .. 'owner:' .. owner, seq, id)
move(p, id, owner, seq, nil, 'queued')
return 1
"""
).replace("LIMIT", str(PRIORITY_LIMIT))

_CLAIM = (
    _MOVE
    + """
local popped = redis.call('ZPOPMIN', p .. 'queue')
if #popped == 0 then return false end
local id = popped[1]
local key = p .. 'job:' .. id
local owner, seq = redis.call('HGET', key, 'owner'), redis.call('HGET', key, 'seq')
redis.call('HINCRBY', key, 'attempts', 1)
redis.call('HSET', key, 'status', 'processing', 'token', ARGV[1], 'updated_at', ARGV[2],
           'started_at', ARGV[2])
redis.call('ZADD', p .. 'running', ARGV[3], id)
move(p, id, owner, seq, 'queued', 'processing')
return redis.call('HGETALL', key)
"""
)

_RENEW = """
local p = KEYS[1]
local key = p .. 'job:' .. ARGV[1]
local state = redis.call('HMGET', key, 'status', 'token')
if state[1] ~= 'processing' or state[2] ~= ARGV[2] then return 0 end
redis.call('ZADD', p .. 'running', ARGV[3], ARGV[1])
return 1
"""

_FINISH = (
    _MOVE
    + """
local id = ARGV[1]
local key = p .. 'job:' .. id
local state = redis.call('HMGET', key, 'status', 'token', 'owner', 'seq')
if state[1] ~= 'processing' or state[2] ~= ARGV[2] then return 0 end
redis.call('HSET', key, 'status', ARGV[3], 'error', ARGV[5], 'backend', ARGV[6],
           'finished_at', ARGV[7], 'updated_at', ARGV[7], 'token', '')
if ARGV[4] ~= '' then redis.call('HSET', key, 'result', ARGV[4]) end
redis.call('ZREM', p .. 'running', id)
redis.call('ZADD', p .. 'done', ARGV[8], id)
move(p, id, state[3], state[4], 'processing', ARGV[3])
return 1
"""
)

_RELEASE = (
    _MOVE
    + """
local id = ARGV[1]
local key = p .. 'job:' .. id
local state = redis.call('HMGET', key, 'status', 'token', 'owner', 'seq', 'score')
if state[1] ~= 'processing' or state[2] ~= ARGV[2] then return 0 end
if ARGV[3] == '0' then redis.call('HINCRBY', key, 'attempts', -1) end
redis.call('HSET', key, 'status', 'queued', 'token', '', 'error', ARGV[4], 'updated_at', ARGV[5])
redis.call('ZREM', p .. 'running', id)
redis.call('ZADD', p .. 'queue', state[5], id)
move(p, id, state[3], state[4], 'processing', 'queued')
return 1
"""
)

_CANCEL = (
    _MOVE
    + """
local id = ARGV[1]
local key = p .. 'job:' .. id
local before = redis.call('HGETALL', key)
if #before == 0 then return false end
local state = redis.call('HMGET', key, 'status', 'owner', 'seq')
if state[1] == 'queued' or state[1] == 'processing' then
  redis.call('ZREM', p .. 'queue', id)
  redis.call('ZREM', p .. 'running', id)
  redis.call('HSET', key, 'status', 'cancelled', 'token', '', 'error', 'cancelled',
             'finished_at', ARGV[2], 'updated_at', ARGV[2])
  redis.call('ZADD', p .. 'done', ARGV[3], id)
  move(p, id, state[2], state[3], state[1], 'cancelled')
end
return before
"""
)

_REAP = (
    _MOVE
    + """
local ids = redis.call('ZRANGEBYSCORE', p .. 'running', '-inf', ARGV[1], 'LIMIT', 0, 100)
for _, id in ipairs(ids) do
  redis.call('ZREM', p .. 'running', id)
  local key = p .. 'job:' .. id
  local state = redis.call('HMGET', key, 'status', 'owner', 'seq', 'score', 'attempts')
  if state[1] == 'processing' then
    if tonumber(state[5]) >= tonumber(ARGV[2]) then
      redis.call('HSET', key, 'status', 'failed', 'token', '', 'finished_at', ARGV[3],
                 'updated_at', ARGV[3],
                 'error', 'interrupted ' .. state[5] .. ' times (its claim lapsed: the gateway stopped or lost the store while it ran)')
      redis.call('ZADD', p .. 'done', ARGV[1], id)
      move(p, id, state[2], state[3], 'processing', 'failed')
    else
      redis.call('HSET', key, 'status', 'queued', 'token', '', 'updated_at', ARGV[3])
      redis.call('ZADD', p .. 'queue', state[4], id)
      move(p, id, state[2], state[3], 'processing', 'queued')
    end
  end
end
return #ids
"""
)


_EXPIRE = """
local p = KEYS[1]
local ids = redis.call('ZRANGEBYSCORE', p .. 'done', '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  local key = p .. 'job:' .. id
  local state = redis.call('HMGET', key, 'status', 'owner')
  redis.call('ZREM', p .. 'done', id)
  redis.call('ZREM', p .. 'all', id)
  if state[1] and state[2] then
    redis.call('ZREM', p .. 'owner:' .. state[2], id)
    redis.call('ZREM', p .. 'status:' .. state[1], id)
    redis.call('ZREM', p .. 'owner:' .. state[2] .. ':status:' .. state[1], id)
  end
  redis.call('DEL', key)
end
return #ids
"""


def _opt_float(value: str | None) -> float | None:
    return float(value) if value else None


def _hash_to_job(data: dict[str, str]) -> Job:
    return Job(
        id=data["id"],
        kind=data.get("kind", "job"),
        owner=data["owner"],
        path=data["path"],
        body=json.loads(data["body"]),
        priority=int(data["priority"]),
        status=JobStatus(data["status"]),
        created_at=float(data["created_at"]),
        updated_at=float(data["updated_at"]),
        started_at=_opt_float(data.get("started_at")),
        finished_at=_opt_float(data.get("finished_at")),
        attempts=int(data.get("attempts", 0)),
        backend=data.get("backend", ""),
        error=data.get("error", ""),
        result=json.loads(data["result"]) if data.get("result") else None,
        token=data.get("token", ""),
    )


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class RedisJobStore(JobStore):
    shared = True

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None

    @property
    def _r(self) -> aioredis.Redis:
        if self._redis is None:
            raise StoreUnavailable("job store is not open")
        return self._redis

    async def open(self) -> None:
        await self.close()  # a client left by an open that failed
        # Bounded waits: an unreachable server is an error to report, not a hung request.
        self._redis = aioredis.from_url(
            self.url, decode_responses=True, socket_connect_timeout=2, socket_timeout=10
        )
        await self._redis.ping()
        r = self._redis
        self._submit = r.register_script(_SUBMIT)
        self._claim = r.register_script(_CLAIM)
        self._renew = r.register_script(_RENEW)
        self._finish = r.register_script(_FINISH)
        self._release = r.register_script(_RELEASE)
        self._cancel = r.register_script(_CANCEL)
        self._reap = r.register_script(_REAP)
        self._expire = r.register_script(_EXPIRE)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def recover(self, max_attempts: int) -> int:
        now = time.time()
        reaped = await self._reap(
            keys=[self.prefix], args=[int(now * 1000), max_attempts, repr(now)]
        )
        return int(reaped)

    async def submit(self, job: Job, max_queued: int) -> bool:
        fields: dict[str, Any] = {
            "id": job.id,
            "kind": job.kind,
            "owner": job.owner,
            "path": job.path,
            "body": json.dumps(job.body),
            "priority": job.priority,
            "status": str(job.status),
            "created_at": repr(job.created_at),
            "updated_at": repr(job.updated_at),
            "attempts": 0,
        }
        flat = [x for kv in fields.items() for x in kv]
        added = await self._submit(
            keys=[self.prefix], args=[max_queued, job.id, job.owner, job.priority, *flat]
        )
        return bool(added)

    async def get(self, job_id: str) -> Job | None:
        data = cast("dict[str, str]", await self._r.hgetall(self.prefix + "job:" + job_id))
        return _hash_to_job(data) if data else None

    async def list(
        self, *, owner: str | None, status: JobStatus | None, offset: int, limit: int
    ) -> Page:
        key = self.prefix
        key += f"owner:{owner}" if owner is not None else ""
        if status is not None:
            key += f"{':' if owner is not None else ''}status:{status}"
        elif owner is None:
            key += "all"
        total = int(await self._r.zcard(key))
        ids = cast("list[str]", await self._r.zrevrange(key, offset, offset + limit - 1))
        async with self._r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.prefix + "job:" + job_id)
            rows = await pipe.execute()
        return Page([_hash_to_job(row) for row in rows if row], total)

    async def claim(self, token: str, lease_s: float) -> Job | None:
        now = time.time()
        flat = await self._claim(
            keys=[self.prefix], args=[token, repr(now), int((now + lease_s) * 1000)]
        )
        return _hash_to_job(_pairs(flat)) if flat else None

    async def renew(self, job_id: str, token: str, lease_s: float) -> bool:
        expiry = int((time.time() + lease_s) * 1000)
        return bool(await self._renew(keys=[self.prefix], args=[job_id, token, expiry]))

    async def finish(
        self,
        job_id: str,
        token: str,
        status: JobStatus,
        *,
        result: object = None,
        error: str = "",
        backend: str = "",
    ) -> bool:
        encoded = "" if result is None else json.dumps(result)
        now = time.time()
        args: list[str | int] = [job_id, token, str(status), encoded, error, backend, repr(now)]
        args.append(int(now * 1000))
        return bool(await self._finish(keys=[self.prefix], args=args))

    async def release(
        self, job_id: str, token: str, *, keep_attempt: bool, error: str = ""
    ) -> bool:
        args = [job_id, token, "1" if keep_attempt else "0", error, repr(time.time())]
        return bool(await self._release(keys=[self.prefix], args=args))

    async def cancel(self, job_id: str) -> Job | None:
        now = time.time()
        flat = await self._cancel(keys=[self.prefix], args=[job_id, repr(now), int(now * 1000)])
        return _hash_to_job(_pairs(flat)) if flat else None

    async def counts(self) -> dict[JobStatus, int]:
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zcard(self.prefix + "queue")
            pipe.zcard(self.prefix + "status:processing")
            queued, processing = await pipe.execute()
        return {JobStatus.QUEUED: int(queued), JobStatus.PROCESSING: int(processing)}

    async def stuck(self, started_before: float, limit: int) -> builtins.list[Job]:
        # Only running jobs are in this set: a handful per instance.
        ids = cast("list[str]", await self._r.zrange(self.prefix + "status:processing", 0, -1))
        async with self._r.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.prefix + "job:" + job_id)
            rows = await pipe.execute()
        jobs = [_hash_to_job(row) for row in rows if row]
        old = [j for j in jobs if j.status is JobStatus.PROCESSING]
        old = [j for j in old if j.started_at is not None and j.started_at < started_before]
        old.sort(key=lambda j: j.started_at or 0.0)
        return old[:limit]

    async def expire(self, finished_before: float) -> int:
        batch, total = 500, 0
        while True:  # in batches: one short script each
            args = [int(finished_before * 1000), batch]
            deleted = int(await self._expire(keys=[self.prefix], args=args))
            total += deleted
            if deleted < batch:
                return total

    async def delete_all(self) -> None:
        """Remove every key under this store's prefix (tests and benchmarks clean up)."""
        async for key in self._r.scan_iter(match=self.prefix + "*", count=1000):
            await self._r.delete(key)
