"""Running a request through the gateway in-process: the whole hook chain, no HTTP.

``gateway.dispatch(...)`` is how internal work (jobs) uses the gateway: it acts as the
given principal, so that principal's permissions, allow-list, priority and limits apply
exactly as to a live request, and the answer is collected in memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from multidict import CIMultiDict

from .dialect import Dialect
from .exchange import Exchange, Principal
from .pipeline import serve
from .sink import CollectSink

if TYPE_CHECKING:
    from .gateway import Gateway


@dataclass
class Dispatched:
    """The collected answer, and the exchange that made it (backend, usage, outcome)."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    exchange: Exchange


async def dispatch(
    gateway: Gateway,
    method: str,
    path: str,
    body: bytes | Mapping[str, Any] | None,
    principal: Principal,
    *,
    task_id: str = "",
    headers: Mapping[str, str] | None = None,
) -> Dispatched:
    """Run ``method path`` with ``body`` as ``principal``. Cancelling the call cancels the
    request, upstream included."""
    raw = json.dumps(body).encode() if isinstance(body, Mapping) else (body or b"")
    all_headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
    all_headers.update(headers or {})
    sink = CollectSink()
    exchange = Exchange(
        gateway=gateway,
        request=None,
        sink=sink,
        method=method,
        path=path,
        query="",
        headers=all_headers,
        body=raw,
        dialect=Dialect.of_path(path),
        principal=principal,
        task_id=task_id,
    )
    response = await serve(exchange)
    if not sink.started:
        sink.take(response)
    return Dispatched(sink.status, sink.headers, sink.body, exchange)
