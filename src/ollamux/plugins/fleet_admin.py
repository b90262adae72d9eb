"""The ``fleet_admin`` built-in plugin: the backend table, a health summary, drain and undrain.

``/__proxy/backends`` and ``/__proxy/health`` answer the same as their ``/ollamux/``
twins, for users of the older proxy. Each declares its action; who may take it is asked
of the permission hook.

It reads what the other fleet owners keep: ``gateway.backends`` (and ``Backend`` fields),
the shared ``ollamux.fleet`` state (discovery readiness) and the queue's gauges
(``queue_depth``, ``queue_wait_seconds_avg``), so it keeps working whichever plugin
selects backends. Drain and undrain announce themselves with ``ollamux_backend_changed``.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ..fleet import fleet_of
from ..gateway import Gateway
from ..hookspecs import hookimpl
from ..permissions import ADMIN, PUBLIC


@hookimpl
def ollamux_register_routes(gateway: Gateway) -> None:
    routes = _Routes(gateway)
    table = gateway.routes
    table.add(
        "GET", "/ollamux/health", routes.health, action=PUBLIC, openapi={"summary": "liveness"}
    )
    table.add(
        "GET",
        "/ollamux/backends",
        routes.backends,
        action=ADMIN,
        openapi={"summary": "the backend table"},
    )
    table.add("GET", "/__proxy/health", routes.health, action=ADMIN)
    table.add("GET", "/__proxy/backends", routes.backends, action=ADMIN)
    for verb, handler in (("drain", routes.drain), ("undrain", routes.undrain)):
        table.add(
            "POST",
            f"/ollamux/backends/{{name}}/{verb}",
            handler,
            action=ADMIN,
            openapi={"summary": f"{verb} a backend"},
        )


class _Routes:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def _gauge(self, name: str) -> float:
        read = self.gateway.gauges.get(name)
        return read() if read is not None else 0.0

    def _describe_all(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {**b.describe(), "cooling_down": b.busy_until > now}
            for b in sorted(self.gateway.backends.values(), key=lambda b: b.name)
        ]

    async def backends(self, request: web.Request) -> web.Response:
        routing = self.gateway.config.routing
        return web.json_response(
            {
                "backends": self._describe_all(),
                "queue": {
                    "depth": int(self._gauge("queue_depth")),
                    "max": routing.max_queue,
                    "timeout_s": routing.queue_timeout_s,
                    "wait_s_avg": round(self._gauge("queue_wait_seconds_avg"), 3),
                },
                "discovery": {"ready": fleet_of(self.gateway).discovery_ready},
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        backends = list(self.gateway.backends.values())
        healthy = sum(1 for b in backends if b.healthy and not b.draining)
        if healthy and healthy == len(backends):
            status = "ok"
        elif healthy:
            status = "degraded"
        else:
            status = "unavailable"
        return web.json_response(
            {
                "status": status,
                "backends": {
                    "total": len(backends),
                    "healthy": healthy,
                    "draining": sum(1 for b in backends if b.draining),
                },
                "in_flight": sum(b.in_flight for b in backends),
                "queue_depth": int(self._gauge("queue_depth")),
            },
            status=200 if healthy else 503,
        )

    async def drain(self, request: web.Request) -> web.Response:
        return await self._set_draining(request, True)

    async def undrain(self, request: web.Request) -> web.Response:
        return await self._set_draining(request, False)

    async def _set_draining(self, request: web.Request, draining: bool) -> web.Response:
        name = request.match_info["name"]
        backend = self.gateway.backends.get(name)
        if backend is None:
            return web.json_response({"error": f"no backend named '{name}'"}, status=404)
        if backend.draining != draining:
            backend.draining = draining
            await self.gateway.hooks.backend_changed(self.gateway, backend)
        return web.json_response(backend.describe())
