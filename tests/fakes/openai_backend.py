"""A scripted fake OpenAI-compatible server (vLLM / llama.cpp style) on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .ollama_backend import Received, record


@dataclass
class FakeOpenAI:
    models: list[str] = field(default_factory=lambda: ["qwen2.5-7b"])
    words: list[str] = field(default_factory=lambda: ["Hello", " there", "!"])
    mode: str = "ok"  # ok | hang | die | status
    status: int = 500
    status_body: Any = field(
        default_factory=lambda: {"error": {"message": "boom", "type": "server_error"}}
    )
    tool_calls: list[dict[str, Any]] | None = None
    reasoning: str = ""
    api_key: str | None = None
    received: list[Received] = field(default_factory=list)
    probes: list[Received] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)  # a "hang" began

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/models", self.list_models)
        app.router.add_get("/v1/models/{model:.+}", self.get_model)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/embeddings", self.embeddings)
        return app

    @property
    def last(self) -> Received:
        return self.received[-1]

    async def _record(self, request: web.Request) -> Any:
        return await record(request, self.received, self.probes)

    def _check(self, request: web.Request) -> web.Response | None:
        if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return web.json_response(
                {"error": {"message": "bad key", "type": "authentication_error"}}, status=401
            )
        if self.mode == "status":
            return web.json_response(self.status_body, status=self.status)
        return None

    async def list_models(self, request: web.Request) -> web.Response:
        await self._record(request)
        bad = self._check(request)
        if bad:
            return bad
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"id": m, "object": "model", "created": 1700000000, "owned_by": "vllm"}
                    for m in self.models
                ],
            }
        )

    async def get_model(self, request: web.Request) -> web.Response:
        await self._record(request)
        model = request.match_info["model"]
        if model not in self.models:
            return web.json_response(
                {"error": {"message": f"model {model} not found", "type": "invalid_request_error"}},
                status=404,
            )
        return web.json_response(
            {"id": model, "object": "model", "created": 1700000000, "owned_by": "vllm"}
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request) or {}
        bad = self._check(request)
        if bad:
            return bad
        model = body.get("model")
        if model not in self.models:
            return web.json_response(
                {
                    "error": {
                        "message": f"model {model} does not exist",
                        "type": "NotFoundError",
                        "code": 404,
                    }
                },
                status=404,
            )
        if self.mode == "hang":
            self.started.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.disconnected.set()
                raise
        usage = {
            "prompt_tokens": 5,
            "completion_tokens": len(self.words),
            "total_tokens": 5 + len(self.words),
        }
        finish = "tool_calls" if self.tool_calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(self.words)}
            if self.tool_calls:
                message["tool_calls"] = self.tool_calls
            if self.reasoning:
                message["reasoning_content"] = self.reasoning
            return web.json_response(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1700000000,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            obj = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return f"data: {json.dumps(obj)}\n\n".encode()

        await resp.write(chunk({"role": "assistant", "content": ""}))
        if self.reasoning:
            await resp.write(chunk({"reasoning_content": self.reasoning}))
        for i, word in enumerate(self.words):
            await resp.write(chunk({"content": word}))
            if self.mode == "die" and i == 1:
                assert request.transport is not None
                request.transport.close()
                return resp
        for i, call in enumerate(self.tool_calls or []):
            args = call["function"]["arguments"]
            half = len(args) // 2
            await resp.write(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": i,
                                "id": call.get("id"),
                                "type": "function",
                                "function": {
                                    "name": call["function"]["name"],
                                    "arguments": args[:half],
                                },
                            }
                        ]
                    }
                )
            )
            await resp.write(
                chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]})
            )
        await resp.write(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            obj = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": model,
                "choices": [],
                "usage": usage,
            }
            await resp.write(f"data: {json.dumps(obj)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def completions(self, request: web.Request) -> web.Response:
        body = await self._record(request) or {}
        bad = self._check(request)
        if bad:
            return bad
        return web.json_response(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "created": 1700000000,
                "model": body.get("model"),
                "choices": [{"index": 0, "text": "".join(self.words), "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
            }
        )

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await self._record(request) or {}
        bad = self._check(request)
        if bad:
            return bad
        inputs = body.get("input", "")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        vec = [0.1, 0.2, 0.3]
        data = []
        for i, _ in enumerate(inputs):
            emb: Any = vec
            if body.get("encoding_format") == "base64":
                emb = base64.b64encode(struct.pack("<3f", *vec)).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            }
        )
