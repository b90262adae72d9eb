"""Running the app: one process listening on the configured host and port."""

from __future__ import annotations

import logging

from aiohttp import web

from .app import create_app
from .config import Config
from .hooks import PluginManager
from .logging_setup import setup_logging
from .pipeline import GATEWAY

log = logging.getLogger("ollamux")


def serve(config: Config, pm: PluginManager | None = None) -> None:
    setup_logging(config.server.log_level, config.server.log_format)
    app = create_app(config, pm)
    app[GATEWAY].self_url = local_url(config.server.host, config.server.port)
    backends = ", ".join(f"{b.name}={b.url} ({b.api})" for b in config.backends) or "none"
    log.info(
        "ollamux listening on http://%s:%d; backends: %s",
        config.server.host,
        config.server.port,
        backends,
    )
    web.run_app(
        app,
        host=config.server.host,
        port=config.server.port,
        shutdown_timeout=config.server.shutdown_timeout_s,
        handler_cancellation=True,
        access_log=None,
        print=None,
    )


def local_url(host: str, port: int) -> str:
    """Where this process reaches its own listener (wildcard addresses mean loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
