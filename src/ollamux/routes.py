"""Every HTTP route with the action it needs, and the OpenAPI fragment it documents.

Plugins add routes with ``gateway.routes.add(...)`` from ``ollamux_register_routes``. A
route added to the router directly, without an action, is refused at start
(``RouteTable.check``): no endpoint can be reached without the core asking who may.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .hardening import expect_later as hardening_expect

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UndeclaredRoute(Exception):
    """A route was added without the action it needs."""


class RouteTable:
    def __init__(self, app: web.Application) -> None:
        self.app = app
        self._actions: dict[web.AbstractRoute, str] = {}
        self.openapi: dict[str, dict[str, Any]] = {}  # path -> method -> operation

    def add(
        self,
        method: str,
        path: str,
        handler: Handler,
        *,
        action: str,
        openapi: dict[str, Any] | None = None,
        allow_head: bool = True,
    ) -> web.AbstractRoute:
        """Add a route needing ``action``; ``openapi`` is its operation object (summary,
        parameters, ...), merged into ``/ollamux/openapi.json``."""
        # No ``100 Continue`` before auth and the size check: hardening sends it later.
        expect = hardening_expect
        if method == "GET":
            route = self.app.router.add_get(
                path, handler, allow_head=allow_head, expect_handler=expect
            )
            if allow_head:
                head = next(r for r in route.resource or () if r.method == "HEAD")
                self._actions[head] = action
        else:
            route = self.app.router.add_route(method, path, handler, expect_handler=expect)
        self._actions[route] = action
        if openapi is not None and method != "*":
            if action == "public":
                openapi = {**openapi, "security": []}  # no credentials needed
            self.openapi.setdefault(path, {})[method.lower()] = openapi
        return route

    def action_of(self, request: web.Request) -> str | None:
        """The action the matched route needs; ``None`` when no route matched (404/405)."""
        return self._actions.get(request.match_info.route)

    def check(self) -> None:
        """Refuse a route added without an action (``app.router.add_*`` by a plugin)."""
        for route in self.app.router.routes():
            if route not in self._actions:
                resource = route.resource.canonical if route.resource else "?"
                raise UndeclaredRoute(
                    f"route {route.method} {resource} was added without an action:"
                    " register it with gateway.routes.add(..., action=...)"
                )
