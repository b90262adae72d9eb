"""Running the gateway: one process, or ``--workers N`` processes sharing the port.

One process (``run``) listens, and on SIGTERM/SIGINT stops accepting, lets requests in
flight finish for up to ``server.shutdown_timeout_s`` (then cancels them), and only then
runs the plugins' ``ollamux_shutdown`` (jobs are requeued, stores closed). SIGHUP re-reads
the config (``reload``). With several workers a supervisor (``workers``) starts the
processes, each binding the port with SO_REUSEPORT, and passes signals on to them.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from .app import create_app
from .config import Config
from .hooks import PluginManager
from .logging_setup import setup_logging
from .pipeline import GATEWAY
from .reload import reload_config
from .workers import WorkerSlot, run_workers

log = logging.getLogger("ollamux")


def serve(
    config: Config,
    pm: PluginManager | None = None,
    *,
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> int:
    """Run until stopped by a signal; returns the process exit code."""
    setup_logging(config.server.log_level, config.server.log_format)
    if config.server.workers > 1:
        return run_workers(config, config_path, overrides)
    asyncio.run(run(config, pm, config_path=config_path, overrides=overrides))
    return 0


def self_url(host: str, port: int) -> str:
    """Where this process reaches itself: a wildcard address means loopback."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def run(
    config: Config,
    pm: PluginManager | None = None,
    *,
    config_path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    slot: WorkerSlot | None = None,
) -> None:
    """Serve one process until SIGTERM/SIGINT, then drain and shut down."""
    slot = slot or WorkerSlot()
    slot.apply(config)
    app = create_app(config, pm)
    gateway = app[GATEWAY]
    if slot.internal_token:
        gateway.internal_token = slot.internal_token
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=config.server.shutdown_timeout_s,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    reloads: set[asyncio.Task[bool]] = set()

    def on_hup() -> None:
        log.info("SIGHUP: reloading the config")
        task = loop.create_task(reload_config(gateway, config_path, overrides, slot.apply))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    try:
        site = web.TCPSite(
            runner, config.server.host, config.server.port, reuse_port=slot.count > 1
        )
        await site.start()
        port = _bound_port(runner, config.server.port)
        gateway.self_url = self_url(config.server.host, port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        backends = ", ".join(f"{b.name}={b.url} ({b.api})" for b in config.backends) or "none"
        log.info(
            "ollamux listening on http://%s:%d%s; backends: %s",
            config.server.host,
            port,
            f" (worker {slot.index + 1}/{slot.count})" if slot.count > 1 else "",
            backends,
        )
        await stop.wait()
        log.info(
            "shutting down: no new connections; draining requests in flight (up to %gs)",
            gateway.config.server.shutdown_timeout_s,
        )
    finally:
        gateway.draining = True
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("ollamux stopped")


def _bound_port(runner: web.AppRunner, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured
