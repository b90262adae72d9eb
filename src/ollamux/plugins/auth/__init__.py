"""The ``auth`` built-in plugin: API keys, per-key model allow-lists and limits.

No keys configured (``auth.keys`` and ``auth.admin_keys`` empty): auth is off, every caller
is anonymous, and the server says so once at start. With keys, this plugin is one
implementation of the core's identity and permission hooks: it names the caller of every
route from its key (``ollamux_authenticate``), keeps admin actions to admin keys and
models to each key's allow-list (``ollamux_permission_allowed``), and charges rate and
concurrency limits (``ollamux_admit``), for live requests and jobs alike.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from aiohttp import web

from ...config import Config, ConfigSection
from ...errors import GatewayError
from ...exchange import Exchange, Principal, ResponseHead
from ...gateway import Gateway
from ...hookspecs import hookimpl
from ...listing import LISTING_PATHS
from ...permissions import ADMIN, JOBS_SUBMIT, METRICS, MODEL_USE, MODELS_MANAGE
from ...transforms import ResponseTransform
from ...workers import WORKER_SLOT
from .keys import KeyEntry, KeyRing, presented_key
from .limits import Limits, LocalLimits, RedisLimits, too_many
from .listing_filter import ListingFilter
from .policy import model_allowed
from .settings import SECTION, AuthConfig, settings

__all__ = ["model_allowed"]

log = logging.getLogger("ollamux.auth")

_SLOT = "auth"  # exchange.state key: (KeyEntry, handle) of an in-flight slot to give back

# Actions only admin keys may take.
_ADMIN_ONLY = frozenset({ADMIN, METRICS, MODELS_MANAGE})
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass
class AuthState:
    ring: KeyRing
    limits: Limits = field(default_factory=LocalLimits)


STATE: web.AppKey[AuthState] = web.AppKey("ollamux_auth", AuthState)


def _state(gateway: Gateway) -> AuthState | None:
    app = gateway.app
    return app.get(STATE) if app is not None else None


@hookimpl
def ollamux_config_section() -> ConfigSection:
    return SECTION


@hookimpl
def ollamux_register_routes(gateway: Gateway, app: web.Application) -> None:
    app[STATE] = AuthState(KeyRing.from_config(settings(gateway.config)))


def _ring(gateway: Gateway, cfg: AuthConfig) -> KeyRing:
    """The keys, each with this worker's share of its limits (unless kept in Redis)."""
    app = gateway.app
    slot = app.get(WORKER_SLOT) if app is not None else None
    split = slot is not None and slot.count > 1 and not cfg.redis_url
    return KeyRing.from_config(cfg, slot.share if split and slot is not None else None)


@hookimpl
def ollamux_startup(gateway: Gateway) -> None:
    state = _state(gateway)
    if state is not None:
        state.ring = _ring(gateway, settings(gateway.config))
        state.limits = _limits_for(state, settings(gateway.config))
        _announce(state, settings(gateway.config))


@hookimpl
async def ollamux_config_reloaded(gateway: Gateway, old: Config, new: Config) -> None:
    """New keys take effect at once; counters of keys that stay are kept."""
    state = _state(gateway)
    if state is None:
        return
    before, after = settings(old), settings(new)
    state.ring = _ring(gateway, after)
    shared = bool(after.redis_url) and state.ring.enabled
    moved = (before.redis_url, before.redis_prefix) != (after.redis_url, after.redis_prefix)
    if shared != isinstance(state.limits, RedisLimits) or (shared and moved):
        await state.limits.close()
        state.limits = _limits_for(state, after)
    _announce(state, after)


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


# -- identity and permissions -------------------------------------------------------------


@hookimpl
def ollamux_authenticate(request: web.Request) -> Principal | None:
    state = request.app.get(STATE)
    if state is None or not state.ring.enabled:
        return None
    key = presented_key(request.headers)
    if key is None:
        raise GatewayError(
            401, "an API key is required", code="missing_api_key", headers=_CHALLENGE
        )
    entry = state.ring.lookup(key)
    if entry is None:
        raise GatewayError(401, "invalid API key", code="invalid_api_key", headers=_CHALLENGE)
    return entry.principal


@hookimpl
def ollamux_permission_allowed(
    gateway: Gateway, principal: Principal, action: str, resource: str | None
) -> bool | Awaitable[bool | None] | None:
    state = _state(gateway)
    if state is None or not state.ring.enabled:
        return None
    if action in _ADMIN_ONLY:
        return principal.admin
    if action == MODEL_USE:
        return model_allowed(principal, resource)
    if action == JOBS_SUBMIT:
        entry = state.ring.by_name.get(principal.name)
        if entry is not None and entry.rpm:
            return _charge(state, entry)
    return None


async def _charge(state: AuthState, entry: KeyEntry) -> None:
    """Submitting a job spends a request of the key's rpm budget (its run does not)."""
    wait = await state.limits.take_token(entry)
    if wait:
        raise too_many("rate limit exceeded for this key", wait)


@hookimpl
def ollamux_resolve_principal(gateway: Gateway, name: str) -> Principal | None:
    """A job's owner as its key is configured now (a removed key's jobs may not run)."""
    state = _state(gateway)
    if state is None or not state.ring.enabled:
        return None
    entry = state.ring.by_name.get(name)
    if entry is None:
        raise GatewayError(403, f"the key {name!r} no longer exists")
    return entry.principal


@hookimpl
def ollamux_admit(exchange: Exchange) -> Awaitable[None] | None:
    """Charge the key's rate (live requests: a job paid when it was submitted) and take an
    in-flight slot (live requests and jobs share ``max_concurrency``)."""
    if not exchange.principal.authenticated:  # no key to charge (auth off, nothing to look up)
        return None
    state = _state(exchange.gateway)
    if state is None or not state.ring.enabled:
        return None
    entry = state.ring.by_name.get(exchange.principal.name)
    if entry is None or not (entry.rpm or entry.max_concurrency):
        return None
    return _admit(state, exchange, entry)


async def _admit(state: AuthState, exchange: Exchange, entry: KeyEntry) -> None:
    if entry.rpm and exchange.request is not None:
        wait = await state.limits.take_token(entry)
        if wait:
            raise too_many("rate limit exceeded for this key", wait)
    if entry.max_concurrency:
        handle = await state.limits.acquire(entry)
        if handle is None:
            raise too_many("too many requests in flight for this key", 1)
        exchange.state[_SLOT] = (entry, handle)


@hookimpl
def ollamux_transform_response(exchange: Exchange, head: ResponseHead) -> ResponseTransform | None:
    if not exchange.principal.models:
        return None
    keys = LISTING_PATHS.get((exchange.method, exchange.path))
    if keys is None:
        return None
    return ListingFilter(exchange.principal, keys[0], keys[1])


@hookimpl
def ollamux_request_finished(exchange: Exchange) -> Awaitable[None] | None:
    """Give back the in-flight slot, if the request took one (awaited only then)."""
    slot = exchange.state.pop(_SLOT, None)
    if slot is None:
        return None
    state = _state(exchange.gateway)
    if state is None:
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
