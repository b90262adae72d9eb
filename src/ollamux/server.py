"""Running the app: one process listening on the configured host and port."""

from __future__ import annotations

import logging

from aiohttp import web

from .app import create_app
from .config import Config
from .hooks import PluginManager
from .logging_setup import setup_logging

log = logging.getLogger("ollamux")


def serve(config: Config, pm: PluginManager | None = None) -> None:
    setup_logging(config.server.log_level, config.server.log_format)
    app = create_app(config, pm)
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
