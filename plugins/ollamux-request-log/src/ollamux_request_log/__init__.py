"""ollamux-request-log: append one JSON line per finished request to a file.

Configure it with ``plugins.config.request_log.path``; without a path it does nothing
(and says so once at start). Each line holds the task id, method, path, model, backend,
status, outcome and duration of one request.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ollamux import hookimpl
from ollamux.exchange import Exchange
from ollamux.gateway import Gateway

NAME = "request_log"

log = logging.getLogger("ollamux.request_log")


def log_path(gateway: Gateway) -> Path | None:
    """The file named by ``plugins.config.request_log.path`` (None when unset)."""
    path = gateway.plugin_config(NAME).get("path")
    return Path(str(path)).expanduser() if path else None


def record(exchange: Exchange) -> dict[str, Any]:
    """The JSON line written for one finished request."""
    return {
        "ts": round(exchange.created, 3),
        "task_id": exchange.task_id or None,
        "method": exchange.method,
        "path": exchange.path,
        "model": exchange.model_requested,
        "backend": exchange.backend.name if exchange.backend else None,
        "status": exchange.status,
        "outcome": str(exchange.outcome),
        "duration_ms": exchange.elapsed_ms(),
    }


@hookimpl
def ollamux_startup(gateway: Gateway) -> None:
    path = log_path(gateway)
    if path is None:
        log.warning("request_log: no plugins.config.request_log.path set; not logging")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)


@hookimpl
def ollamux_request_finished(exchange: Exchange) -> None:
    path = log_path(exchange.gateway)
    if path is None:
        return
    line = json.dumps(record(exchange), separators=(",", ":")) + "\n"
    # One short append per request: a single write() of a small line keeps lines whole
    # even when several workers share the file.
    with path.open("a", encoding="utf-8") as f:
        f.write(line)
