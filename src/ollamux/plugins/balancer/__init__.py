"""The ``balancer`` plugin: picks a backend for each request.

For now: the least-busy healthy backend not yet tried for this request.
"""

from __future__ import annotations

from ...backend import Backend
from ...exchange import Exchange, Outcome
from ...hookspecs import hookimpl


@hookimpl(trylast=True)
def ollamux_select_backend(exchange: Exchange) -> Backend | None:
    candidates = [
        b
        for b in exchange.gateway.backends.values()
        if b.name not in exchange.tried and not b.draining
    ]
    if not candidates:
        return None
    best = min(candidates, key=lambda b: (not b.healthy, b.in_flight, b.name))
    best.in_flight += 1
    return best


@hookimpl
def ollamux_backend_released(backend: Backend, outcome: Outcome) -> None:
    backend.in_flight = max(0, backend.in_flight - 1)
