"""The app factory: ``create_app(config)`` builds one aiohttp application and its gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from . import hardening, openapi, redact
from .access_log import access_middleware
from .config import Config
from .gateway import Gateway
from .hooks import PluginManager
from .identity import identity_middleware
from .permissions import ADMIN, PROXY
from .pipeline import GATEWAY, handle
from .plugin_manager import PluginError, build_plugin_manager
from .routes import RouteTable, UndeclaredRoute


def create_app(config: Config, pm: PluginManager | None = None) -> web.Application:
    """Build the app. Pass ``pm`` to use a plugin manager you prepared (tests do)."""
    pm = pm if pm is not None else build_plugin_manager(config)
    redact.install(config)  # before the auth plugin replaces plain keys by digests
    gateway = Gateway(config, pm)
    app = web.Application(client_max_size=int(config.server.max_body_mb * 1024 * 1024))
    app[GATEWAY] = gateway
    gateway.app = app
    gateway.routes = routes = RouteTable(app)
    access = access_middleware(gateway)
    app.middlewares.append(access)
    hardening.install(app)
    before = len(app.middlewares)
    gateway.hooks.register_routes(gateway, app)
    if len(app.middlewares) == before:
        # No plugin middleware: the path guard, identity and the body read in one frame.
        app.middlewares.append(identity_middleware(gateway, guard=True))
    else:
        # The guard first (right after the access log), the plugins', then identity.
        app.middlewares.insert(app.middlewares.index(access) + 1, hardening.guard)
        app.middlewares.append(identity_middleware(gateway, guard=False))
    routes.add("GET", "/ollamux/openapi.json", openapi.serve, action=ADMIN)
    for prefix in ("/api/{tail:.*}", "/v1/{tail:.*}", "/v1", "/"):
        routes.add("*", prefix, handle, action=PROXY)
    try:
        routes.check()
    except UndeclaredRoute as exc:
        raise PluginError(str(exc)) from exc
    app.cleanup_ctx.append(_lifecycle)
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    gateway = app[GATEWAY]
    await gateway.open()
    try:
        await gateway.hooks.startup(gateway)
        yield
    finally:
        await gateway.hooks.shutdown(gateway)
        await gateway.close()
