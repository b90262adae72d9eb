"""The ``auth`` built-in plugin: API keys, per-key model allow-lists and limits.

No keys configured (``auth.keys`` and ``auth.admin_keys`` empty): auth is off, every caller
is anonymous, and the server says so once at start. With keys, every endpoint but
``GET /ollamux/health`` needs one (see ``policy``); the middleware identifies the caller of
every route, and the hooks below apply the per-key rules on the proxied request path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import redis.asyncio as aioredis
from aiohttp import web

from ...config import AuthConfig, Config
from ...errors import GatewayError
from ...exchange import Exchange, Principal, ResponseHead
from ...gateway import Gateway
from ...hookspecs import hookimpl
from ...listing import LISTING_PATHS
from ...transforms import ResponseTransform
from .keys import KeyEntry, KeyRing
from .limits import Limits, LocalLimits, RedisLimits, too_many
from .listing_filter import ListingFilter
from .middleware import CALLER_KEY, STATE, AuthState, identify, make_middleware
from .policy import model_allowed

__all__ = ["model_allowed"]

log = logging.getLogger("ollamux.auth")

_SLOT = "auth"  # exchange.state key: (KeyEntry, handle) of an in-flight slot to give back


def _state(gateway: Gateway) -> AuthState | None:
    app = gateway.app
    return app.get(STATE) if app is not None else None


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    state = AuthState(KeyRing.from_config(gateway.config.auth), gateway)
    app[STATE] = state
    # Installed even with auth off: a reloaded config may add keys (it checks first thing).
    app.middlewares.append(make_middleware(state))


@hookimpl
def ollamux_startup(gateway: Gateway) -> None:
    state = _state(gateway)
    if state is not None:
        state.limits = _limits_for(state, gateway.config.auth)
        _announce(state, gateway.config.auth)


@hookimpl
async def ollamux_config_reloaded(gateway: Gateway, old: Config, new: Config) -> None:
    """New keys take effect at once; counters of keys that stay are kept."""
    state = _state(gateway)
    if state is None:
        return
    state.ring = KeyRing.from_config(new.auth)
    shared = bool(new.auth.redis_url) and state.ring.enabled
    moved = (old.auth.redis_url, old.auth.redis_prefix) != (
        new.auth.redis_url,
        new.auth.redis_prefix,
    )
    if shared != isinstance(state.limits, RedisLimits) or (shared and moved):
        await state.limits.close()
        state.limits = _limits_for(state, new.auth)
    _announce(state, new.auth)


def _limits_for(state: AuthState, cfg: AuthConfig) -> Limits:
    """Redis-backed when a Redis URL is configured (and auth is on), else per instance."""
    if cfg.redis_url and state.ring.enabled:
        return RedisLimits(cfg.redis_url, cfg.redis_prefix)
    return LocalLimits()


def _announce(state: AuthState, cfg: AuthConfig) -> None:
    if not state.ring.enabled:
        log.warning("auth is off: no API keys configured (auth.keys, auth.admin_keys)")
        return
    log.info(
        "auth is on: %d keys; limits kept %s",
        len(state.ring.by_digest),
        "in Redis" if isinstance(state.limits, RedisLimits) else "per instance",
    )


@hookimpl
async def ollamux_shutdown(gateway: Gateway) -> None:
    state = _state(gateway)
    if state is not None:
        await state.limits.close()


@hookimpl
async def ollamux_authenticate(exchange: Exchange) -> Principal | None:
    state = exchange.request.app.get(STATE)
    if state is None or not state.ring.enabled:
        return None
    caller = exchange.request.get(CALLER_KEY)
    if caller is None:
        caller = identify(state, exchange.headers, exchange.path)
    entry = caller.entry
    if not caller.internal:
        if entry.rpm:
            wait = await state.limits.take_token(entry)
            if wait:
                raise too_many("rate limit exceeded for this key", wait)
        if entry.max_concurrency:
            handle = await state.limits.acquire(entry)
            if handle is None:
                raise too_many("too many requests in flight for this key", 1)
            exchange.state[_SLOT] = (entry, handle)
    return entry.principal


@hookimpl
def ollamux_rewrite_request(exchange: Exchange) -> None:
    principal = exchange.principal
    if not principal.models:
        return
    if exchange.model is None:
        if exchange.method in ("GET", "HEAD"):
            return  # listings (filtered), versions, the root: no model involved
        # A body ollamux cannot read a model from (multipart uploads...) cannot be checked.
        raise GatewayError(
            403, "this key may only send requests naming an allowed model", code="model_not_allowed"
        )
    if model_allowed(principal, exchange.model) or model_allowed(
        principal, exchange.model_requested
    ):
        return
    raise GatewayError(
        403,
        f"model {exchange.model_requested or exchange.model!r} is not allowed for this key",
        code="model_not_allowed",
        param="model",
    )


@hookimpl
def ollamux_transform_response(exchange: Exchange, head: ResponseHead) -> ResponseTransform | None:
    if not exchange.principal.models:
        return None
    keys = LISTING_PATHS.get((exchange.method, exchange.path))
    if keys is None:
        return None
    suffix = exchange.gateway.config.models.suffix
    return ListingFilter(exchange.principal, keys[0], keys[1], suffix)


@hookimpl
def ollamux_request_finished(exchange: Exchange) -> Awaitable[None] | None:
    """Give back the in-flight slot, if the request took one (awaited only then)."""
    slot = exchange.state.pop(_SLOT, None)
    state = exchange.request.app.get(STATE)
    if slot is None or state is None:
        return None
    return _release(state, *slot)


async def _release(state: AuthState, entry: KeyEntry, handle: str) -> None:
    try:
        await state.limits.release(entry, handle)
    except aioredis.RedisError as exc:
        log.warning(
            "could not give back an in-flight slot of %s: %s",
            entry.principal.name,
            type(exc).__name__,
        )
