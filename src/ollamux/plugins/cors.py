"""The ``cors`` built-in plugin: lets browser pages on other origins call ollamux.

Off while ``cors.allow_origins`` is empty. Preflights (``OPTIONS`` with
``Access-Control-Request-Method``) are answered here, before auth, since browsers never
send credentials on them; a plain ``OPTIONS`` still needs a key. The headers on ordinary
responses are added just before they are sent, so streams get them too. Credentials
(cookies) are never allowed: callers authenticate with a header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Generator
from dataclasses import dataclass, field
from typing import cast

from aiohttp import web
from aiohttp.typedefs import Handler

from ..config import Config, ConfigSection
from ..gateway import Gateway
from ..hookspecs import hookimpl

_EXPOSE = "X-Task-Id, Retry-After, WWW-Authenticate"


@dataclass
class CorsConfig:
    """The ``cors`` section: which browser origins may call, and how."""

    allow_origins: list[str] = field(default_factory=list)
    allow_methods: list[str] = field(
        default_factory=lambda: ["GET", "POST", "PUT", "DELETE", "OPTIONS", "HEAD"]
    )
    allow_headers: list[str] = field(default_factory=lambda: ["*"])
    max_age_s: int = 600


class Cors:
    """The policy of one app, precomputed from ``cors`` (again on a config reload)."""

    def __init__(self, cfg: CorsConfig) -> None:
        self.configure(cfg)

    def configure(self, cfg: CorsConfig) -> None:
        self.enabled = bool(cfg.allow_origins)
        self.any_origin = "*" in cfg.allow_origins
        self.origins = frozenset(cfg.allow_origins)
        self.methods = ", ".join(m.upper() for m in cfg.allow_methods)
        self.any_header = "*" in cfg.allow_headers
        self.headers = ", ".join(cfg.allow_headers)
        self.max_age = str(cfg.max_age_s)

    def allowed(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins

    def preflight(self, request: web.Request, origin: str) -> web.Response:
        if not self.allowed(origin):
            return web.json_response({"error": "origin not allowed"}, status=403)
        requested = request.headers.get("Access-Control-Request-Headers", "")
        headers = {
            "Access-Control-Allow-Origin": origin if not self.any_origin else "*",
            "Access-Control-Allow-Methods": self.methods,
            "Access-Control-Max-Age": self.max_age,
            "Vary": "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        }
        allowed_headers = requested if self.any_header else self.headers
        if allowed_headers:
            headers["Access-Control-Allow-Headers"] = allowed_headers
        return web.Response(status=204, headers=headers)

    def on_prepare(self, request: web.Request, response: web.StreamResponse) -> Awaitable[None]:
        """Plain (not ``async``): aiohttp awaits what a receiver returns, and there is
        nothing to wait for, so no response pays for a coroutine here."""
        origin = request.headers.get("Origin")
        if origin is not None and self.enabled and self.allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = "*" if self.any_origin else origin
            response.headers["Access-Control-Expose-Headers"] = _EXPOSE
            if not self.any_origin:
                response.headers.add("Vary", "Origin")
        return _DONE

    @web.middleware
    def middleware(self, request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        """Plain (not ``async``): every request that is not a preflight is handed on as the
        next handler's own awaitable, one coroutine less in each request's chain."""
        origin = request.headers.get("Origin")
        if (
            origin is not None
            and self.enabled
            and request.method == "OPTIONS"
            and "Access-Control-Request-Method" in request.headers
        ):
            return self._preflight(request, origin)
        return handler(request)

    async def _preflight(self, request: web.Request, origin: str) -> web.StreamResponse:
        return self.preflight(request, origin)


class _Done:
    """An awaitable already done with ``None``."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        return cast("Generator[None, None, None]", iter(()))


_DONE = _Done()


@hookimpl
def ollamux_config_section() -> ConfigSection:
    return ConfigSection("cors", CorsConfig)


def settings(config: Config) -> CorsConfig:
    return config.section("cors", CorsConfig)


CORS: web.AppKey[Cors] = web.AppKey("ollamux_cors", Cors)


# tryfirst: its middleware must come before auth's, which would refuse a preflight.
# Installed even when off, so that a reloaded config can turn it on.
@hookimpl(tryfirst=True)
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    cors = Cors(settings(gateway.config))
    app[CORS] = cors
    app.middlewares.append(cors.middleware)
    app.on_response_prepare.append(cors.on_prepare)


@hookimpl
def ollamux_config_reloaded(gateway: Gateway, new: Config) -> None:
    if gateway.app is not None and CORS in gateway.app:
        gateway.app[CORS].configure(settings(new))


@hookimpl
def ollamux_cross_origin_allowed(gateway: Gateway, origin: str) -> bool | None:
    """Pages on ``cors.allow_origins`` may send state-changing requests (the core's
    cross-origin guard refuses other sites')."""
    cors = gateway.app.get(CORS) if gateway.app is not None else None
    return True if cors is not None and cors.enabled and cors.allowed(origin) else None
