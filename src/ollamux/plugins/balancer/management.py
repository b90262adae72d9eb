"""Model management (``/api/pull``, ``/api/delete``, ``/api/create``, ``/api/copy``,
``/api/push``) changes one server's disk, so it never goes to a backend picked at random.

- ``X-Ollamux-Backend: <name>`` sends it to that backend.
- ``X-Ollamux-All: 1`` sends a pull or a delete to every healthy Ollama backend that is not
  draining, at once; a streamed pull interleaves their progress lines, each tagged with
  ``"backend"``, and ends with one overall line.
- Neither header: fine with exactly one backend; otherwise a 400 saying what to add.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
from aiohttp import web

from ... import protocol
from ...backend import Backend
from ...dialect import NDJSON, Dialect
from ...endpoints import ENDPOINTS, Kind
from ...errors import GatewayError, upstream_error_message
from ...exchange import Exchange
from ...gateway import Gateway

PATHS = frozenset(p for p, e in ENDPOINTS.items() if e.kind is Kind.MANAGEMENT)
FAN_OUT_PATHS = frozenset({"/api/pull", "/api/delete"})
BACKEND_HEADER = protocol.BACKEND
ALL_HEADER = protocol.ALL_BACKENDS

_DONE = object()


def wants_all(exchange: Exchange) -> bool:
    return exchange.headers.get(ALL_HEADER, "").strip().lower() in ("1", "true", "yes")


def target(gateway: Gateway, exchange: Exchange) -> Backend | None:
    """The one backend a management request names (None once it was tried)."""
    backends = gateway.backends
    name = exchange.headers.get(BACKEND_HEADER, "").strip()
    if wants_all(exchange):
        raise GatewayError(
            400,
            f"{ALL_HEADER} is only for /api/pull and /api/delete; name one backend with "
            f"{BACKEND_HEADER}",
        )
    if name:
        backend = backends.get(name)
        if backend is None:
            known = ", ".join(sorted(backends)) or "none"
            raise GatewayError(
                400, f"unknown backend '{name}' in {BACKEND_HEADER} (known: {known})"
            )
    elif len(backends) == 1:
        backend = next(iter(backends.values()))
    else:
        raise GatewayError(
            400,
            f"{exchange.path} changes one server's models: name it with the header "
            f"{BACKEND_HEADER}: <backend>"
            + (
                f" or send {ALL_HEADER}: 1 for every backend"
                if exchange.path in FAN_OUT_PATHS
                else ""
            )
            + f" (backends: {', '.join(sorted(backends))})",
        )
    return None if backend.name in exchange.tried else backend


async def respond_all(exchange: Exchange, backends: list[Backend]) -> web.StreamResponse:
    """Run a pull or delete on every backend in ``backends`` and answer for all of them."""
    if not backends:
        raise GatewayError(503, "no healthy Ollama backend", headers={"Retry-After": "1"})
    if exchange.path == "/api/pull" and exchange.stream:
        return await _stream_pulls(exchange, backends)
    answers = await asyncio.gather(*(_call(exchange, b) for b in backends))
    results = dict(zip((b.name for b in backends), answers, strict=True))
    gateway = exchange.gateway
    for backend, (answered, _doc) in zip(backends, answers, strict=True):
        if answered < 300:
            await gateway.hooks.backend_models_changed(gateway, backend)
    statuses = [status for status, _ in answers]
    if all(s < 300 for s in statuses):
        status = 200
    elif exchange.path == "/api/delete" and all(s < 300 or s == 404 for s in statuses):
        status = 200 if any(s < 300 for s in statuses) else 404
    else:
        status = 502
    body: dict[str, Any] = {
        "status": "success" if status == 200 else "failed",
        "backends": {name: {"status": s, **doc} for name, (s, doc) in results.items()},
    }
    if status != 200:
        failed = [n for n, (s, _) in results.items() if s >= 300]
        body["error"] = f"{exchange.path} failed on: {', '.join(failed)}"
    exchange.status = status
    return web.json_response(body, status=status, headers=exchange.response_headers)


async def _call(exchange: Exchange, backend: Backend) -> tuple[int, dict[str, Any]]:
    """One backend's whole answer: (status, JSON object or {"error": ...})."""
    try:
        async with exchange.gateway.session.request(
            exchange.method,
            backend.url + exchange.path,
            data=exchange.upstream_body(),
            headers={"Content-Type": "application/json", **backend.auth_headers()},
        ) as resp:
            raw = await resp.read()
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return 502, {"error": f"backend {backend.name} unreachable: {exc or type(exc).__name__}"}
    if status >= 300:
        return status, {"error": upstream_error_message(raw)}
    try:
        doc = json.loads(raw) if raw.strip() else {}
    except ValueError:
        doc = {}
    return status, doc if isinstance(doc, dict) else {}


async def _stream_pulls(exchange: Exchange, backends: list[Backend]) -> web.StreamResponse:
    lines: asyncio.Queue[object] = asyncio.Queue()
    tasks = [asyncio.create_task(_pull_into(exchange, b, lines)) for b in backends]
    sink = exchange.sink
    await sink.start(200, {"Content-Type": NDJSON, **exchange.response_headers})
    failed: list[str] = []
    try:
        pending = len(tasks)
        while pending:
            item = await lines.get()
            if item is _DONE:
                pending -= 1
                continue
            assert isinstance(item, dict)
            if "error" in item:
                failed.append(str(item["backend"]))
            await sink.write(json.dumps(item).encode() + b"\n")
    finally:
        for t in tasks:
            t.cancel()
    gateway = exchange.gateway
    for backend in backends:
        if backend.name not in failed:
            await gateway.hooks.backend_models_changed(gateway, backend)
    last: dict[str, Any] = (
        {"error": f"pull failed on: {', '.join(failed)}"} if failed else {"status": "success"}
    )
    exchange.status = 200
    await sink.end(json.dumps(last).encode() + b"\n")
    return sink.answer()


async def _pull_into(exchange: Exchange, backend: Backend, out: asyncio.Queue[object]) -> None:
    """Relay one backend's pull progress into ``out``, each line tagged with its name."""
    try:
        async with exchange.gateway.session.post(
            backend.url + exchange.path,
            data=exchange.upstream_body(),
            headers={"Content-Type": "application/json", **backend.auth_headers()},
        ) as resp:
            if resp.status >= 300:
                message = upstream_error_message(await resp.read())
                await out.put({"backend": backend.name, "error": message})
                return
            async for raw in resp.content:
                if not raw.strip():
                    continue
                try:
                    item = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(item, dict):
                    await out.put({"backend": backend.name, **item})
    except (aiohttp.ClientError, TimeoutError) as exc:
        await out.put(
            {"backend": backend.name, "error": f"unreachable: {exc or type(exc).__name__}"}
        )
    finally:
        out.put_nowait(_DONE)


def fan_out_targets(gateway: Gateway) -> list[Backend]:
    return sorted(
        (
            b
            for b in gateway.backends.values()
            if b.healthy and not b.draining and b.api is Dialect.OLLAMA
        ),
        key=lambda b: b.name,
    )
