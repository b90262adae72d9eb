"""Kept output: a request's answer, chunk by chunk, re-readable at
``GET /tasks/{id}/output?from=N`` while it runs and after.

Output is kept for detached requests and jobs, and for a live request that asks with
``X-Ollamux-Keep: true`` (``protocol.KEEP``). The tasks plugin then puts a ``KeepSink``
between the pipeline and the request's own sink: it cuts the answer into the format's own
chunks (NDJSON lines, SSE events; a non-streamed answer is one chunk), numbers them from 0
and sends the client exactly what ``/output`` would serve (SSE events carry ``id: <n>``, so
``Last-Event-ID`` resumes). A client that disconnects does not stop a kept request.

Where it lives: in this process (any store), and in Redis as well when the task store is
Redis (a list per task, ``ollamux:out:<redis_prefix><task_id>``, and its meta hash
``ollamux:outmeta:...``), so any instance can serve it. At most ``tasks.output_max_mb`` per
task is kept (later chunks still reach a live client); kept output expires with the task
(``ttl_done_s`` after it ended).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from ...exchange import principal_of
from ...permissions import TASKS_READ
from ...pipeline import GATEWAY
from ...protocol import TASK_ID
from ...sink import Sink
from .document import is_valid_task_id

log = logging.getLogger("ollamux.tasks")

NDJSON, SSE, WHOLE = "ndjson", "sse", "json"
CONTENT_TYPES = {NDJSON: "application/x-ndjson", SSE: "text/event-stream"}
REMOTE_POLL_S = 0.05
# Finished outputs this process keeps at most (bytes), oldest dropped first.
LOCAL_BUDGET = 512 * 1024 * 1024
COPY_LINGER_S = 0.05  # how long new chunks gather before they are copied to Redis


def kind_of(content_type: str) -> str:
    ct = content_type.lower()
    if "event-stream" in ct:
        return SSE
    if "ndjson" in ct:
        return NDJSON
    return WHOLE


def render(kind: str, items: list[bytes], first: int) -> bytes:
    """Chunks ``first, first+1, ...`` as the format has them on the wire."""
    if kind == SSE:
        return b"".join(b"id: %d\n%s\n\n" % (first + i, item) for i, item in enumerate(items))
    return b"".join(items)


class Recorder:
    """One task's kept output in this process."""

    def __init__(self, task_id: str, owner: str, limit: int) -> None:
        self.task_id = task_id
        self.owner = owner
        self.limit = limit
        self.kind = ""  # known once the answer starts
        self.content_type = ""
        self.items: list[bytes] = []
        self.size = 0
        self.truncated = False
        self.done = False
        self.done_at = 0.0
        self._rest = b""
        self._wake = asyncio.Event()
        self.unsaved: list[bytes] = []  # for the Redis copy

    def start(self, content_type: str) -> None:
        self.content_type = content_type or "application/json"
        self.kind = kind_of(self.content_type)
        self._notify()

    def feed(self, data: bytes) -> list[bytes]:
        """The chunks completed by ``data`` (kept, as long as the limit allows)."""
        if self.kind == WHOLE or not self.kind:
            self._rest += data
            return []
        buf = self._rest + data if self._rest else data
        if self.kind == NDJSON:
            cut = buf.rfind(b"\n") + 1
            new = buf[:cut].splitlines(keepends=True) if cut else []
        else:
            cut = buf.rfind(b"\n\n") + 2 if b"\n\n" in buf else 0
            new = [e for e in buf[: max(0, cut - 2)].split(b"\n\n") if e] if cut else []
        self._rest = buf[cut:]
        self._keep(new)
        return new

    def finish(self, data: bytes = b"") -> list[bytes]:
        """The last chunks: whatever ``data`` completes, and what is left over."""
        new = self.feed(data)
        rest, self._rest = self._rest, b""
        if self.kind == SSE:
            rest = rest.strip(b"\n")
        if rest:
            self._keep([rest])
            new.append(rest)
        self.done = True
        self.done_at = time.time()
        self._notify()
        return new

    def _keep(self, new: list[bytes]) -> None:
        if not new:
            return
        for item in new:
            if self.truncated or self.size + len(item) > self.limit:
                self.truncated = True
                break
            self.items.append(item)
            self.unsaved.append(item)
            self.size += len(item)
        self._notify()

    def _notify(self) -> None:
        self._wake.set()
        self._wake = asyncio.Event()

    async def follow(self, start: int) -> AsyncIterator[tuple[int, list[bytes]]]:
        """``(index, chunks)`` from chunk ``start`` on, as they come, until the end."""
        while True:
            wake = self._wake
            if len(self.items) > start:
                batch = self.items[start:]
                yield start, batch
                start += len(batch)
                continue
            if self.done:
                return
            await wake.wait()


class KeepSink(Sink):
    """Records the answer (``Recorder``) and passes it on to ``inner`` while its receiver
    listens; a receiver that went away is no reason to stop."""

    def __init__(self, inner: Sink, recorder: Recorder, outputs: Outputs) -> None:
        self.inner = inner
        self.recorder = recorder
        self.outputs = outputs
        self.remote = inner.remote
        self.started = False
        self._sent = 0  # chunks sent to the receiver
        self._lost = False

    def gone(self) -> bool:
        return False

    async def start(self, status: int, headers: Mapping[str, str]) -> None:
        self.started = True
        self.recorder.start(headers.get("Content-Type", ""))
        await self._pass(self.inner.start(status, headers))

    async def write(self, data: bytes) -> None:
        rec = self.recorder
        if rec.kind == WHOLE:
            rec.feed(data)
            await self._pass(self.inner.write(data))
            return
        new = rec.feed(data)
        self.outputs.saved(rec)
        if new:
            first, self._sent = self._sent, self._sent + len(new)
            await self._pass(self.inner.write(render(rec.kind, new, first)))

    async def end(self, data: bytes = b"") -> None:
        rec = self.recorder
        if rec.kind == WHOLE:
            rec.finish(data)
            out = data
        else:
            new = rec.finish(data)
            first, self._sent = self._sent, self._sent + len(new)
            out = render(rec.kind, new, first)
        self.outputs.saved(rec)
        await self._pass(self.inner.end(out))

    async def _pass(self, call: object) -> None:
        if self._lost:
            if asyncio.iscoroutine(call):
                call.close()
            return
        try:
            await call  # type: ignore[misc]
        except (ConnectionError, aiohttp.ClientConnectionResetError, RuntimeError) as exc:
            log.debug("task %s: receiver gone (%s); output still kept", self.recorder.task_id, exc)
            self._lost = True

    def answer(self) -> web.StreamResponse:
        try:
            return self.inner.answer()
        except AssertionError:
            return web.Response(status=499)


class Outputs:
    """The kept outputs of this process, and their Redis copies when the store is Redis."""

    def __init__(self, limit_bytes: int, ttl_s: float, redis_url: str | None, prefix: str) -> None:
        self.limit = limit_bytes
        self.ttl_s = ttl_s
        self.prefix = prefix
        self.local: dict[str, Recorder] = {}
        self._redis_url = redis_url
        self._redis: aioredis.Redis | None = None
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._begun = 0

    async def start(self) -> None:
        if self._redis_url:
            self._redis = aioredis.Redis.from_url(self._redis_url, socket_connect_timeout=2)

    async def stop(self) -> None:
        for task in list(self._writers.values()):
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 2)
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    def _keys(self, task_id: str) -> tuple[str, str]:
        return f"ollamux:out:{self.prefix}{task_id}", f"ollamux:outmeta:{self.prefix}{task_id}"

    def begin(self, task_id: str, owner: str) -> Recorder:
        self._expire()
        rec = self.local[task_id] = Recorder(task_id, owner, self.limit)
        if self._redis is not None:
            self._wake[task_id] = asyncio.Event()
            self._writers[task_id] = asyncio.create_task(self._copy(rec))
        return rec

    def saved(self, rec: Recorder) -> None:
        """New chunks (or the end) for the Redis copy."""
        wake = self._wake.get(rec.task_id)
        if wake is not None:
            wake.set()

    def _expire(self) -> None:
        """Drop expired outputs; every 64th call also keeps the finished ones within
        ``LOCAL_BUDGET`` bytes (oldest first)."""
        self._begun += 1
        if self._begun % 64:
            return
        now = time.time()
        for task_id, rec in list(self.local.items()):
            if rec.done and rec.done_at + self.ttl_s < now:
                del self.local[task_id]
        total = sum(rec.size for rec in self.local.values())
        if total > LOCAL_BUDGET:
            for rec in sorted(self.local.values(), key=lambda r: r.done_at):
                if total <= LOCAL_BUDGET:
                    break
                if rec.done:
                    total -= rec.size
                    del self.local[rec.task_id]

    def end(self, sink: Sink) -> None:
        """The request of ``sink`` ended: its output is complete, whatever it was (an
        answer made whole by the pipeline, a refusal, never went through the sink)."""
        if isinstance(sink, KeepSink) and not sink.recorder.done:
            sink.recorder.finish()
            self.saved(sink.recorder)

    async def _copy(self, rec: Recorder) -> None:
        """Write ``rec``'s chunks to Redis as they come (one round trip per batch)."""
        assert self._redis is not None
        out_key, meta_key = self._keys(rec.task_id)
        wake = self._wake[rec.task_id]
        ttl_ms = int(self.ttl_s * 1000)
        try:
            meta_written = False
            first_batch = True
            while True:
                await wake.wait()
                if not rec.done:  # let chunks gather: one round trip for many
                    await asyncio.sleep(COPY_LINGER_S)
                wake.clear()
                batch, rec.unsaved = rec.unsaved, []
                done = rec.done
                if done and not rec.kind:  # the answer never started: nothing was kept
                    return
                pipe = self._redis.pipeline(transaction=False)
                if not meta_written and rec.kind:
                    pipe.hset(
                        meta_key,
                        mapping={"kind": rec.kind, "ct": rec.content_type, "owner": rec.owner},
                    )
                    pipe.pexpire(meta_key, ttl_ms)
                    meta_written = True
                if batch:
                    pipe.rpush(out_key, *batch)
                    if first_batch or done:
                        pipe.pexpire(out_key, ttl_ms)
                    first_batch = False
                if done:
                    pipe.hset(meta_key, "done", "1")
                    pipe.pexpire(out_key, ttl_ms)
                    pipe.pexpire(meta_key, ttl_ms)
                try:
                    await pipe.execute()
                except Exception as exc:
                    log.warning("task %s: output not copied to Redis: %s", rec.task_id, exc)
                if done and not rec.unsaved:
                    return
        finally:
            # Only this recorder's entries: the same task id may have started over.
            if self._wake.get(rec.task_id) is wake:
                del self._wake[rec.task_id]
                self._writers.pop(rec.task_id, None)
            if self._redis is not None:
                # Other instances read the Redis copy; this process keeps it a little longer.
                asyncio.get_running_loop().call_later(5, self._forget, rec)

    def _forget(self, rec: Recorder) -> None:
        if self.local.get(rec.task_id) is rec:
            del self.local[rec.task_id]

    async def remote_meta(self, task_id: str) -> dict[str, str] | None:
        if self._redis is None:
            return None
        raw = await self._redis.hgetall(self._keys(task_id)[1])
        if not raw:
            return None
        return {_text(k): _text(v) for k, v in raw.items()}

    async def follow_remote(
        self, task_id: str, start: int
    ) -> AsyncIterator[tuple[int, list[bytes]]]:
        assert self._redis is not None
        out_key, meta_key = self._keys(task_id)
        while True:
            done = await self._redis.hget(meta_key, "done")
            items = await self._redis.lrange(out_key, start, -1)
            if items:
                yield start, [i if isinstance(i, bytes) else i.encode() for i in items]
                start += len(items)
                continue
            if done is not None:
                return
            await asyncio.sleep(REMOTE_POLL_S)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_output(request: web.Request) -> web.StreamResponse:
    """``GET /tasks/{id}/output?from=N`` (or ``Last-Event-ID: N-1``)."""
    from .events import final, find
    from .routes import TRACKER, error_response

    tracker = request.app[TRACKER]
    outputs = tracker.outputs
    task_id = request.match_info["task_id"]
    if not is_valid_task_id(task_id) or outputs is None:
        return error_response(400, "invalid task id")
    try:
        start = int(request.query.get("from", "0"))
        last_id = request.headers.get("Last-Event-ID")
        if last_id is not None and "from" not in request.query:
            start = int(last_id) + 1
    except ValueError:
        return error_response(400, "from must be a chunk index (an integer >= 0)")
    if start < 0:
        return error_response(400, "from must be a chunk index (an integer >= 0)")
    gateway = request.app[GATEWAY]
    principal = principal_of(request)
    # Wait for the output to begin while the task is queued (a detached request's job).
    while True:
        rec = outputs.local.get(task_id)
        meta = None if rec is not None else await outputs.remote_meta(task_id)
        owner = rec.owner if rec is not None else (meta or {}).get("owner")
        found = None
        if owner is None or not (rec is not None and rec.kind):
            found = await find(tracker, task_id)
            owner = owner or (found[0] if found is not None else None)
        if owner is None or not await gateway.allowed(principal, TASKS_READ, owner):
            return error_response(404, f"task {task_id} not found")
        if (rec is not None and rec.kind) or (meta is not None and "kind" in meta):
            break
        ended = (rec is not None and rec.done) or (found is not None and final(found[1]))
        if ended:  # an answer that never went through the sink (a refusal), or none kept
            return error_response(404, f"no output was kept for task {task_id}")
        await asyncio.sleep(REMOTE_POLL_S)
    if rec is not None:
        kind, ct, chunks = rec.kind, rec.content_type, rec.follow(start)
    else:
        assert meta is not None
        kind, ct = meta["kind"], meta.get("ct", "")
        chunks = outputs.follow_remote(task_id, start)
    response = web.StreamResponse(
        headers={"Content-Type": CONTENT_TYPES.get(kind, ct), TASK_ID: task_id}
    )
    await response.prepare(request)
    async for first, batch in chunks:
        await response.write(render(kind, batch, first))
    await response.write_eof()
    return response
