"""A scripted fake Ollama server: a real aiohttp app on loopback.

It answers the native API with real shapes and can be told to misbehave on demand: hang,
die mid-stream, answer an error line, split lines across writes, be slow. It records what
it received (method, path, headers, JSON body) and whether a client went away.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

NDJSON = "application/x-ndjson"


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: Any


@dataclass
class FakeOllama:
    """Behaviour knobs; tests flip them between requests."""

    models: list[str] = field(default_factory=lambda: ["llama3.2:latest"])
    loaded: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=lambda: ["Hello", " there", ", friend", "!"])
    mode: str = "ok"  # ok | hang | hang_body | die | error_line | split | status | slow
    status: int = 500
    status_body: Any = field(default_factory=lambda: {"error": "boom"})
    delay_s: float = 0.0
    tool_calls: list[dict[str, Any]] | None = None
    thinking: str = ""
    received: list[Received] = field(default_factory=list)
    probes: list[Received] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    name: str = "fake-ollama"
    # When set, /api/tags answers only once this event is set (a server still starting).
    tags_gate: asyncio.Event | None = None

    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_get("/", self.root)
        r.add_get("/api/version", self.version)
        r.add_get("/api/tags", self.tags)
        r.add_get("/api/ps", self.ps)
        r.add_post("/api/show", self.show)
        r.add_post("/api/chat", self.chat)
        r.add_post("/api/generate", self.generate)
        r.add_post("/api/embed", self.embed)
        r.add_post("/api/embeddings", self.embeddings)
        r.add_post("/api/pull", self.pull)
        r.add_delete("/api/delete", self.delete)
        r.add_post("/api/copy", self.copy)
        r.add_post("/api/create", self.pull)
        r.add_post("/api/push", self.pull)
        r.add_route("*", "/v1/{tail:.*}", self.openai_layer)
        return app

    def serves(self, model: Any) -> bool:
        """Whether this fake has ``model``; like Ollama, an untagged name means ``:latest``."""
        if not isinstance(model, str):
            return False
        return model in self.models or f"{model}:latest" in self.models

    async def _record(self, request: web.Request) -> Any:
        return await record(request, self.received, self.probes)

    @property
    def last(self) -> Received:
        return self.received[-1]

    async def _misbehave(self, request: web.Request) -> web.StreamResponse | None:
        self.started.set()
        if self.mode == "hang":
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.disconnected.set()
                raise
        if self.mode == "status":
            return web.json_response(self.status_body, status=self.status)
        if self.mode == "close":
            assert request.transport is not None
            request.transport.close()
            return web.Response()
        return None

    # --- endpoints -------------------------------------------------------------------

    async def root(self, request: web.Request) -> web.Response:
        return web.Response(text="Ollama is running")

    async def version(self, request: web.Request) -> web.Response:
        return web.json_response({"version": "0.12.0"})

    async def tags(self, request: web.Request) -> web.Response:
        await self._record(request)
        if self.tags_gate is not None:
            await self.tags_gate.wait()
        if self.mode == "status":
            return web.json_response(self.status_body, status=self.status)
        return web.json_response({"models": [self._model_entry(m) for m in self.models]})

    def _model_entry(self, name: str) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": "2025-01-01T00:00:00Z",
            "size": 1234,
            "digest": "sha256:" + "0" * 64,
            "details": {"family": "llama", "parameter_size": "1B", "quantization_level": "Q4_0"},
        }

    async def ps(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response(
            {
                "models": [
                    {**self._model_entry(m), "expires_at": "2030-01-01T00:00:00Z", "size_vram": 1}
                    for m in self.loaded
                ]
            }
        )

    async def show(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        name = (body or {}).get("model") or (body or {}).get("name")
        if not self.serves(name):
            return web.json_response({"error": f"model '{name}' not found"}, status=404)
        return web.json_response(
            {
                "modelfile": "FROM x",
                "parameters": "stop <eos>",
                "template": "{{ .Prompt }}",
                "details": {"family": "llama", "parameter_size": "1B"},
                "model_info": {"general.architecture": "llama", "llama.context_length": 2048},
                "capabilities": ["completion", "tools"],
            }
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        return await self._generation(request, body, chat=True)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        return await self._generation(request, body, chat=False)

    def _piece(self, model: str, text: str, chat: bool, thinking: str = "") -> dict[str, Any]:
        obj: dict[str, Any] = {"model": model, "created_at": "2025-01-01T00:00:00Z", "done": False}
        if chat:
            obj["message"] = {"role": "assistant", "content": text}
            if thinking:
                obj["message"]["thinking"] = thinking
        else:
            obj["response"] = text
            if thinking:
                obj["thinking"] = thinking
        return obj

    def _final(self, model: str, chat: bool, reason: str = "stop") -> dict[str, Any]:
        obj = self._piece(model, "", chat)
        obj.update(
            done=True,
            done_reason=reason,
            total_duration=5_000_000,
            load_duration=1_000_000,
            prompt_eval_count=7,
            prompt_eval_duration=1_000_000,
            eval_count=len(self.words),
            eval_duration=3_000_000,
        )
        if not chat:
            obj["context"] = [1, 2, 3]
        return obj

    async def _generation(self, request: web.Request, body: Any, chat: bool) -> web.StreamResponse:
        bad = await self._misbehave(request)
        if bad is not None:
            return bad
        body = body or {}
        model = body.get("model", "")
        if not self.serves(model):
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        stream = body.get("stream", True)
        reason = "length" if (body.get("options") or {}).get("num_predict") == 1 else "stop"
        if not stream:
            text = "".join(self.words)
            final = self._final(model, chat, reason)
            if chat:
                final["message"] = {"role": "assistant", "content": text}
                if self.tool_calls:
                    final["message"]["tool_calls"] = self.tool_calls
                if self.thinking:
                    final["message"]["thinking"] = self.thinking
            else:
                final["response"] = text
                if self.thinking:
                    final["thinking"] = self.thinking
            return web.json_response(final)
        resp = web.StreamResponse(headers={"Content-Type": NDJSON})
        await resp.prepare(request)
        try:
            if self.thinking:
                await resp.write(_line(self._piece(model, "", chat, self.thinking)))
            for i, word in enumerate(self.words):
                if self.mode == "slow":
                    await asyncio.sleep(self.delay_s)
                if self.mode == "hang_body" and i == 1:
                    self.started.set()
                    await asyncio.sleep(3600)
                if self.mode == "wait" and i == 1:
                    await self.release.wait()
                data = _line(self._piece(model, word, chat))
                if self.mode == "split":
                    half = len(data) // 2
                    await resp.write(data[:half])
                    await asyncio.sleep(0.01)
                    await resp.write(data[half:])
                else:
                    await resp.write(data)
                if self.mode == "die" and i == 1:
                    assert request.transport is not None
                    request.transport.close()
                    return resp
                if self.mode == "error_line" and i == 1:
                    await resp.write(_line({"error": "model runner crashed"}))
                    return resp
            if self.tool_calls and chat:
                piece = self._piece(model, "", chat)
                piece["message"]["tool_calls"] = self.tool_calls
                await resp.write(_line(piece))
            await resp.write(_line(self._final(model, chat, reason)))
            await resp.write_eof()
        except (asyncio.CancelledError, ConnectionResetError):
            self.disconnected.set()
            raise
        return resp

    async def embed(self, request: web.Request) -> web.Response:
        body = await self._record(request) or {}
        bad = await self._misbehave(request)
        if bad is not None:
            return bad
        inputs = body.get("input", "")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        return web.json_response(
            {
                "model": body.get("model"),
                "embeddings": [[0.1, 0.2, 0.3] for _ in inputs],
                "total_duration": 1000,
                "load_duration": 10,
                "prompt_eval_count": 3 * len(inputs),
            }
        )

    async def embeddings(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.json_response({"embedding": [0.1, 0.2, 0.3]})

    async def pull(self, request: web.Request) -> web.StreamResponse:
        body = await self._record(request)
        pulled = body.get("model") or body.get("name") if isinstance(body, dict) else None
        if request.path == "/api/pull" and isinstance(pulled, str) and pulled not in self.models:
            self.models.append(pulled)  # from now on it is listed, as a real pull would
        resp = web.StreamResponse(headers={"Content-Type": NDJSON})
        await resp.prepare(request)
        await resp.write(_line({"status": "pulling manifest"}))
        for done in (0, 50, 100):
            await resp.write(
                _line(
                    {
                        "status": "pulling abc",
                        "digest": "sha256:abc",
                        "total": 100,
                        "completed": done,
                    }
                )
            )
        await resp.write(_line({"status": "success"}))
        await resp.write_eof()
        return resp

    async def delete(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response()

    async def copy(self, request: web.Request) -> web.Response:
        await self._record(request)
        return web.Response()

    async def openai_layer(self, request: web.Request) -> web.Response:
        body = await self._record(request)
        return web.json_response(
            {"object": "ollama-openai-layer", "path": request.path, "body": body}
        )


async def record(request: web.Request, received: list[Received], probes: list[Received]) -> Any:
    """Keep what ``request`` carried, in ``received`` (the balancer's health probes apart, in
    ``probes``); returns its body, parsed when it is JSON."""
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw
    seen = Received(request.method, request.path, request.query_string, dict(request.headers), body)
    if request.headers.get("User-Agent", "").startswith("ollamux-probe/"):
        probes.append(seen)
    else:
        received.append(seen)
    return body


def _line(obj: Any) -> bytes:
    return json.dumps(obj).encode() + b"\n"


@dataclass
class Scripted:
    """A backend that answers every generation request with given bytes, and records what
    it received. It lists ``models`` under both APIs (``/api/tags``, ``/v1/models``) so the
    gateway's probes find them. ``pieces`` are written one ``write`` each."""

    models: list[str] = field(default_factory=lambda: ["m:latest", "m"])
    status: int = 200
    content_type: str = "application/json"
    pieces: list[bytes] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    probes: list[Received] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/tags", self.tags)
        app.router.add_get("/api/ps", self.ps)
        app.router.add_get("/v1/models", self.v1_models)
        app.router.add_route("*", "/{tail:.*}", self.answer)
        return app

    @property
    def last(self) -> Received:
        return self.received[-1]

    def script(self, status: int, content_type: str, pieces: list[bytes]) -> None:
        self.status, self.content_type, self.pieces = status, content_type, pieces

    async def tags(self, request: web.Request) -> web.StreamResponse:
        await record(request, self.received, self.probes)
        entries = [
            {"name": m, "model": m, "modified_at": "2025-01-01T00:00:00Z"} for m in self.models
        ]
        return web.json_response({"models": entries})

    async def ps(self, request: web.Request) -> web.StreamResponse:
        await record(request, self.received, self.probes)
        return web.json_response({"models": []})

    async def v1_models(self, request: web.Request) -> web.StreamResponse:
        await record(request, self.received, self.probes)
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "x"}
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def answer(self, request: web.Request) -> web.StreamResponse:
        await record(request, self.received, self.probes)
        resp = web.StreamResponse(status=self.status, headers={"Content-Type": self.content_type})
        await resp.prepare(request)
        for piece in self.pieces:
            await resp.write(piece)
        await resp.write_eof()
        return resp
