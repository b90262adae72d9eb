"""A real ``ollamux serve`` in a subprocess, for tests of signals, workers and the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """``ollamux serve --config <file>`` with its log in a file; ``config`` is rewritable."""

    def __init__(self, tmp: Path, config: dict[str, Any], *args: str) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.config_path = tmp / "ollamux.yaml"
        self.log_path = tmp / "ollamux.log"
        base: dict[str, Any] = {
            "server": {"port": self.port},
            "tasks": {"store": "memory"},
            "jobs": {"sqlite_path": str(tmp / "jobs.db")},
            "plugins": {"autoload": False},
        }
        base["server"].update(config.pop("server", {}))
        base.update(config)
        self.write_config(base)
        self.args = args
        self.proc: asyncio.subprocess.Process | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def write_config(self, data: dict[str, Any]) -> None:
        self.config_path.write_text(yaml.safe_dump(data))

    def write_raw_config(self, text: str) -> None:
        self.config_path.write_text(text)

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in env.items() if not k.startswith("OLLAMUX_")}
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "ollamux",
                "serve",
                "--config",
                str(self.config_path),
                *self.args,
                stdout=log,
                stderr=log,
                env=env,
                cwd=str(self.tmp),
            )
        await self.wait_for(self._ready, "the gateway to listen")

    async def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"gateway exited {self.proc.returncode}:\n{self.log()}")
        try:
            await self.stats()
        except (aiohttp.ClientError, OSError):
            return False
        return True

    async def stats(self) -> dict[str, Any]:
        """``/ollamux/stats`` over a fresh connection (so workers get a fair chance)."""
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as s,
            s.get(self.url + "/ollamux/stats") as resp,
        ):
            data: dict[str, Any] = await resp.json()
            return data

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def wait_for(self, check: Callable[[], Any], what: str, deadline_s: float = 20.0) -> None:
        """Poll ``check`` (sync or async) until it is true, failing after the deadline."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            result = check()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; log:\n{self.log()}")

    async def wait_exit(self, deadline_s: float = 30.0) -> int:
        assert self.proc is not None
        return await asyncio.wait_for(self.proc.wait(), deadline_s)

    async def stop(self) -> None:
        """Terminate (if still running) and reap."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
