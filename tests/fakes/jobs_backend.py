"""A fake Ollama for job tests: answers at once or when told, counts requests per task id.

``prompt`` values starting with "block" wait until ``unblock`` is set (or forever), so a
test can hold jobs in ``processing``. Every request's ``X-Task-Id`` is counted, so a test
can prove a job ran once. ``delay_s`` makes every answer take that long (benchmarks).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class JobsFake:
    models: list[str] = field(default_factory=lambda: ["llama3.2:latest", "qwen2.5:0.5b"])
    delay_s: float = 0.0
    fail_status: int = 0  # answer every generation with this status (0: answer normally)
    calls: Counter[str] = field(default_factory=Counter)
    order: list[str] = field(default_factory=list)  # prompts, in the order requests arrived
    blocked: int = 0  # requests now waiting on ``unblock``
    unblock: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.root)
        app.router.add_get("/api/tags", self.tags)
        app.router.add_post("/api/generate", self.generate)
        app.router.add_post("/api/chat", self.generate)
        app.router.add_post("/api/embed", self.embed)
        return app

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def tags(self, request: web.Request) -> web.Response:
        return web.json_response({"models": [{"name": m, "model": m} for m in self.models]})

    async def _arrive(self, request: web.Request) -> dict[str, Any]:
        body: dict[str, Any] = await request.json()
        self.calls[request.headers.get("X-Task-Id", "")] += 1
        prompt = body.get("prompt") or (body.get("messages") or [{}])[-1].get("content", "")
        self.order.append(str(prompt))
        self.arrived.set()
        if str(prompt).startswith("block"):
            self.blocked += 1
            try:
                await self.unblock.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            finally:
                self.blocked -= 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return body

    async def generate(self, request: web.Request) -> web.Response:
        body = await self._arrive(request)
        if self.fail_status:
            return web.json_response({"error": "backend trouble"}, status=self.fail_status)
        model = body.get("model")
        if model not in self.models:
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        answer: dict[str, Any] = {"model": model, "done": True, "done_reason": "stop"}
        if request.path == "/api/chat":
            text = "echo: " + body["messages"][-1]["content"]
            answer["message"] = {"role": "assistant", "content": text}
        else:
            answer["response"] = "echo: " + body["prompt"]
        answer["stream_was"] = body.get("stream")
        return web.json_response(answer)

    async def embed(self, request: web.Request) -> web.Response:
        body = await self._arrive(request)
        return web.json_response({"model": body.get("model"), "embeddings": [[0.5, 0.25]]})
