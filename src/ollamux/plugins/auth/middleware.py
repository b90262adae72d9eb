"""The auth middleware: identifies the caller of every route before its body is read.

Proxied routes (``/api/*``, ``/v1/*``) get their rate and concurrency limits in the
``ollamux_authenticate`` hook, inside the request path, so that tasks and metrics see
those refusals; everything else is decided here. Errors are rendered in the dialect of
the path (``{"error": "..."}`` outside ``/v1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from ...dialect import Dialect
from ...errors import GatewayError
from ...exchange import PRINCIPAL_KEY
from ...gateway import Gateway
from ...pipeline import handle as proxy_handler
from .keys import KeyEntry, KeyRing, internal_principal, presented_key
from .limits import Limits, LocalLimits, too_many
from .policy import is_public, needs_admin


@dataclass(frozen=True, slots=True)
class Caller:
    """The key behind a request; ``internal`` when one of our own job workers acts for it
    (its limits were paid when the job was submitted)."""

    entry: KeyEntry
    internal: bool


# Where the middleware leaves what it found for the ``ollamux_authenticate`` hook.
CALLER_KEY: web.RequestKey[Caller] = web.RequestKey("ollamux_auth_caller", Caller)


@dataclass
class AuthState:
    ring: KeyRing
    gateway: Gateway  # its ``internal_token`` is read per request: a worker may set it late
    limits: Limits = field(default_factory=LocalLimits)


STATE: web.AppKey[AuthState] = web.AppKey("ollamux_auth", AuthState)


def identify(state: AuthState, headers: Mapping[str, str], path: str) -> Caller:
    """The caller behind ``headers``, allowed on ``path``; GatewayError 401/403 otherwise."""
    entry = internal_principal(state.ring, headers, state.gateway.internal_token)
    internal = entry is not None
    if entry is None:
        key = presented_key(headers)
        if key is None:
            raise GatewayError(
                401, "an API key is required", code="missing_api_key", headers=_CHALLENGE
            )
        entry = state.ring.lookup(key)
        if entry is None:
            raise GatewayError(401, "invalid API key", code="invalid_api_key", headers=_CHALLENGE)
    if needs_admin(path) and not entry.principal.admin:
        raise GatewayError(403, "this endpoint needs an admin key", code="admin_required")
    return Caller(entry, internal)


_CHALLENGE = {"WWW-Authenticate": "Bearer"}
# Basic alone: browsers read one challenge per header and skip a header that begins with a
# scheme they do not know ("Bearer, Basic ..."), so they would never prompt.
_BROWSER_CHALLENGE = {"WWW-Authenticate": 'Basic realm="ollamux", charset="UTF-8"'}


def make_middleware(state: AuthState) -> Middleware:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not state.ring.enabled or is_public(request.method, request.path):
            return await handler(request)
        try:
            caller = identify(state, request.headers, request.path)
            request[CALLER_KEY] = caller
            request[PRINCIPAL_KEY] = caller.entry.principal
            if (
                request.method == "POST"
                and caller.entry.rpm
                and not caller.internal
                and request.match_info.handler is not proxy_handler
            ):
                wait = await state.limits.take_token(caller.entry)
                if wait:
                    raise too_many("rate limit exceeded for this key", wait)
        except GatewayError as err:
            response = err.response(Dialect.of_path(request.path))
            if err.status == 401 and _from_browser(request):
                response.headers.update(_BROWSER_CHALLENGE)
            return response
        return await handler(request)

    return authenticate


def _from_browser(request: web.Request) -> bool:
    """A page load (``GET`` asking for HTML): offer Basic auth so the browser prompts."""
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")
