"""Shared pieces of the auth, CORS and hardening tests: keys, configs, a raw HTTP client
and a small plugin standing in for the plugin routes other built-ins add."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from ollamux import hookimpl, permissions
from ollamux.exchange import principal_of
from ollamux.gateway import Gateway

ALICE = "alice-key-0123456789"
BOB = "bob-key-9876543210"
ADMIN = "admin-key-5555555555"
BACKEND_KEY = "backend-key-777"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def keyed(url: str, api: str = "ollama", **auth: Any) -> dict[str, Any]:
    """A config with alice (llama3.2 models only), bob (by digest, every model), an admin."""
    keys = auth.pop(
        "keys",
        [
            {"name": "alice", "key": ALICE, "models": ["llama3.2:*"]},
            {"name": "bob", "key_sha256": sha(BOB)},
        ],
    )
    return {
        "backends": [{"url": url, "api": api}],
        "auth": {"keys": keys, "admin_keys": [ADMIN], **auth},
    }


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class PluginRoutes:
    """Stands in for the routes of tasks, jobs, balancer and metrics, with the same
    actions: each answers with the name of the caller the core found."""

    @hookimpl
    def ollamux_register_routes(self, gateway: Gateway) -> None:
        for path, action in (
            ("/ollamux/health", permissions.PUBLIC),
            ("/ollamux/backends", permissions.ADMIN),
            ("/__proxy/backends", permissions.ADMIN),
            ("/metrics", permissions.METRICS),
            ("/tasks/status", permissions.TASKS_READ),
            ("/tasks/status/{task_id}", permissions.TASKS_READ),
            ("/jobs/{job_id}", permissions.JOBS_READ),
            ("/list", permissions.PAGE),
        ):
            gateway.routes.add("GET", path, self.whoami, action=action)
        gateway.routes.add("POST", "/jobs", self.whoami, action=permissions.JOBS_SUBMIT)

    async def whoami(self, request: web.Request) -> web.Response:
        return web.json_response({"caller": principal_of(request).name})


class CrashingRoute:
    """A plugin route with a bug: ``GET /boom`` raises."""

    @hookimpl
    def ollamux_register_routes(self, gateway: Gateway) -> None:
        gateway.routes.add("GET", "/boom", self.boom, action=permissions.PAGE)

    async def boom(self, request: web.Request) -> web.Response:
        raise RuntimeError("a secret traceback detail")


async def raw_request(
    client: TestClient[Any, Any],
    method: str,
    target: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, dict[str, str], bytes]:
    """Send exactly ``target`` (no client-side URL normalisation) and read the answer."""
    assert client.server.host is not None and client.server.port is not None
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    head = f"{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
    for k, v in (headers or {}).items():
        head += f"{k}: {v}\r\n"
    if body:
        head += f"Content-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    status_line, _, rest = data.partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    parsed = {}
    for line in header_block.decode().split("\r\n"):
        k, _, v = line.partition(":")
        parsed[k.strip().lower()] = v.strip()
    return int(status_line.split()[1]), parsed, payload
