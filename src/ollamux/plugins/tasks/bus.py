"""The channel between ollamux instances that share a Redis task store (Redis pub/sub).

One control channel, ``ollamux:bus:<redis_prefix>``, carries small JSON messages:

- ``{"op": "cancel", "task_id", "by"}``: the instance running that task cancels it;
- ``{"op": "watch", "task_id"}``: someone watches that task; the instance running it
  publishes its status document on ``ollamux:ev:<redis_prefix><task_id>`` as it changes,
  for a few seconds (watchers repeat the message while they watch).

Nothing is published for a task nobody cancels or watches: tasks cost what they did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger("ollamux.tasks")

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class TaskBus:
    def __init__(self, url: str, prefix: str, handler: Handler) -> None:
        self.url = url
        self.prefix = prefix
        self.control = f"ollamux:bus:{prefix}"
        self.handler = handler
        self._redis: aioredis.Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    @property
    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            raise ConnectionError("the task bus is closed")
        return self._redis

    def events_channel(self, task_id: str) -> str:
        return f"ollamux:ev:{self.prefix}{task_id}"

    async def start(self) -> None:
        self._redis = aioredis.Redis.from_url(self.url, socket_connect_timeout=2)
        self._task = asyncio.create_task(self._listen(), name="ollamux-tasks-bus")

    async def stop(self) -> None:
        self.ready.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        client, self._redis = self._redis, None
        if client is not None:
            await client.aclose()

    async def publish(self, message: dict[str, Any]) -> None:
        await self.redis.publish(self.control, json.dumps(message))

    async def publish_doc(self, task_id: str, doc: dict[str, Any]) -> None:
        await self.redis.publish(self.events_channel(task_id), json.dumps(doc))

    @contextlib.asynccontextmanager
    async def subscribe(self, task_id: str) -> AsyncIterator[Any]:
        """A pub/sub connection subscribed to the task's documents."""
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.events_channel(task_id))
        try:
            yield pubsub
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def _listen(self) -> None:
        while True:
            pubsub = self.redis.pubsub()
            try:
                await pubsub.subscribe(self.control)
                self.ready.set()
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    try:
                        data = json.loads(message["data"])
                    except ValueError:
                        continue
                    try:
                        await self.handler(data)
                    except Exception:
                        log.exception("task bus message failed: %s", data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                log.warning("task bus: %s; subscribing again in 1 s", exc)
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
