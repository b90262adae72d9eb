"""Admin and visibility routes: the backend table, a health summary, drain and undrain.

``/__proxy/backends`` and ``/__proxy/health`` answer the same as their ``/ollamux/``
twins, for users of the older proxy. Each declares its action; who may take it is asked
of the permission hook.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from ...permissions import ADMIN, PUBLIC
from ...routes import RouteTable
from .fleet import Fleet


def register(table: RouteTable, fleet: Fleet) -> None:
    routes = _Routes(fleet)
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
    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet

    def _describe_all(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        return [
            {**b.describe(), "cooling_down": b.busy_until > now}
            for b in sorted(self.fleet.gateway.backends.values(), key=lambda b: b.name)
        ]

    async def backends(self, request: web.Request) -> web.Response:
        fleet = self.fleet
        return web.json_response(
            {
                "backends": self._describe_all(),
                "queue": {
                    "depth": len(fleet.queue),
                    "max": fleet.queue.limit,
                    "timeout_s": fleet.queue_timeout_s,
                    "wait_s_avg": round(fleet.wait_s_avg, 3),
                },
                "discovery": {"ready": fleet.discovery_ready},
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        backends = list(self.fleet.gateway.backends.values())
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
                "queue_depth": len(self.fleet.queue),
            },
            status=200 if healthy else 503,
        )

    async def drain(self, request: web.Request) -> web.Response:
        return self._set_draining(request, True)

    async def undrain(self, request: web.Request) -> web.Response:
        return self._set_draining(request, False)

    def _set_draining(self, request: web.Request, draining: bool) -> web.Response:
        name = request.match_info["name"]
        backend = self.fleet.gateway.backends.get(name)
        if backend is None:
            return web.json_response({"error": f"no backend named '{name}'"}, status=404)
        self.fleet.set_draining(backend, draining)
        return web.json_response(backend.describe())
