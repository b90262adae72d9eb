"""Reloading the config file in a running gateway (SIGHUP), without dropping connections.

The new file is validated first; a bad one is refused and the running config kept. Static
backends are added, removed and updated in place in ``gateway.backends`` (a request in
flight keeps the ``Backend`` object it holds), ``gateway.config`` is replaced, and plugins
hear about it through ``ollamux_config_reloaded`` to refresh keys, aliases and limits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .backend import Backend
from .config import BackendConfig, Config
from .config_loader import ConfigError, load_config
from .gateway import Gateway
from .logging_setup import setup_logging

log = logging.getLogger("ollamux.reload")

# Settings a running process cannot change: they need a restart.
_RESTART_ONLY = ("host", "port", "workers", "shutdown_timeout_s")


async def reload_config(
    gateway: Gateway,
    path: str | Path | None,
    overrides: Mapping[str, Any] | None = None,
    adjust: Callable[[Config], None] | None = None,
) -> bool:
    """Re-read the config (file, environment, the flags given at start) and apply it.

    ``adjust`` edits the new config before it is applied (a worker takes its share of each
    backend's ``max_concurrency``). Returns False when the new config was refused.
    """
    try:
        new = load_config(path, env=os.environ, overrides=overrides)
    except ConfigError as exc:
        log.error("config reload refused, keeping the running config: %s", exc)
        return False
    if adjust is not None:
        adjust(new)
    old = gateway.config
    for key in _RESTART_ONLY:
        if getattr(old.server, key) != getattr(new.server, key):
            log.warning("config reload: server.%s changes only on restart", key)
    before, after = old.plugins, new.plugins
    if (before.autoload, before.disable, before.load) != (
        after.autoload,
        after.disable,
        after.load,
    ):
        log.warning("config reload: which plugins are loaded changes only on restart")
    added, removed = sync_backends(gateway, new.backends)
    gateway.config = new
    gateway.retime_upstream()
    if (old.server.log_level, old.server.log_format) != (
        new.server.log_level,
        new.server.log_format,
    ):
        setup_logging(new.server.log_level, new.server.log_format)
    await gateway.hooks.config_reloaded(gateway, old, new)
    log.info(
        "config reloaded; backends added: %s; removed: %s",
        ", ".join(added) or "none",
        ", ".join(removed) or "none",
    )
    return True


def sync_backends(gateway: Gateway, configured: list[BackendConfig]) -> tuple[list[str], list[str]]:
    """Make the static backends match ``configured``; discovered ones are left alone.
    Returns the names added and removed."""
    wanted = {b.name: b for b in configured}
    removed = [
        name for name, b in gateway.backends.items() if name not in wanted and not b.discovered
    ]
    for name in removed:
        del gateway.backends[name]
    added = []
    for name, cfg in wanted.items():
        current = gateway.backends.get(name)
        if current is None or current.discovered:
            gateway.backends[name] = Backend.from_config(cfg)
            added.append(name)
        else:
            _update(current, cfg)
    return added, removed


def _update(backend: Backend, cfg: BackendConfig) -> None:
    """Apply a backend's new settings, keeping its live state (in flight, health, models)."""
    fresh = Backend.from_config(cfg)
    backend.url, backend.api = fresh.url, fresh.api
    backend.native = fresh.native
    backend.max_concurrency = fresh.max_concurrency
    backend.api_key, backend.headers = fresh.api_key, fresh.headers
    if fresh.configured_models != backend.configured_models:
        backend.configured_models = fresh.configured_models
        if fresh.configured_models:
            backend.models = fresh.models
