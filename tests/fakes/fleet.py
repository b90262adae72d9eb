"""Helpers for balancer tests: several fake Ollama servers, free port ranges, a server that
accepts connections and never answers, and waiting on a condition with a deadline."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestServer

from tests.fakes.ollama_backend import FakeOllama, Received


async def until(cond: Callable[[], object], timeout_s: float = 10.0, what: str = "") -> None:
    """Poll ``cond`` until it is true; fail after ``timeout_s`` (a deadline, not a delay)."""
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met in {timeout_s} s: {what or cond}")
        await asyncio.sleep(0.01)


def calls(fake: FakeOllama, path: str) -> list[Received]:
    """What ``fake`` received on ``path``, health probes included."""
    return [r for r in (*fake.probes, *fake.received) if r.path == path]


async def start_fakes(
    aiohttp_server: Any, names: list[str], models: list[str] | None = None
) -> dict[str, tuple[FakeOllama, TestServer, str]]:
    """One FakeOllama per name: name -> (fake, server, base url)."""
    out = {}
    for name in names:
        fake = FakeOllama(name=name, models=list(models or ["llama3.2:latest"]))
        # As the gateway's test server: a handler still in flight when a test ends (a test
        # that failed before releasing a "wait") is cut after 5 s, not aiohttp's 60 s.
        server = await aiohttp_server(fake.app(), shutdown_timeout=5)
        out[name] = (fake, server, str(server.make_url("")).rstrip("/"))
    return out


def free_port_range(n: int) -> int:
    """The first of ``n`` consecutive loopback ports that are free right now."""
    for _ in range(200):
        base = random.randint(30000, 60000 - n)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port range")


@dataclass
class HungServer:
    """Accepts TCP connections and never answers: a dead SSH tunnel."""

    port: int
    open_connections: int = 0
    accepted: int = 0
    server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.open_connections += 1
        self._writers.append(writer)
        try:
            while await reader.read(1024):
                pass
        finally:
            self.open_connections -= 1

    async def stop(self) -> None:
        for w in self._writers:
            w.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
