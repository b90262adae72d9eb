"""A bare exchange for tests of what is made from one (log lines, status documents)."""

from __future__ import annotations

from typing import Any

from multidict import CIMultiDict

from ollamux.dialect import Dialect
from ollamux.exchange import Exchange


def chat_exchange(sink: Any = None, **fields: Any) -> Exchange:
    """An exchange of ``POST /api/chat`` (no gateway, no request) writing to ``sink``, with
    ``fields`` set on it."""
    exchange = Exchange(
        None,  # type: ignore[arg-type]
        None,
        sink,
        "POST",
        "/api/chat",
        "",
        CIMultiDict(),
        b"",
        Dialect.OLLAMA,
    )
    for name, value in fields.items():
        setattr(exchange, name, value)
    return exchange
