"""Who is calling, for every route: the core's identity middleware.

It runs after the path guard and before the body is read, and carries both: when no plugin
adds a middleware, the guard, identity and the body read run in this one middleware (one
frame on every request instead of three); when plugins add middlewares, the guard is a
middleware of its own before theirs (``hardening.guard``) and this one runs after them.

It first refuses a state-changing request from another site (``csrf``). Then it asks the
``ollamux_authenticate`` hook for the caller (unless the route is public), leaves the
principal on the request, and asks ``ollamux_permission_allowed`` for the action the route
declared. Proxied routes check their finer actions (``models.manage``, ``model.use``) in the
pipeline, once the body is known; their refusals here still become request events. Last, the
body is read within ``server.body_timeout_s`` (``hardening.BodyDeadline``).
"""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .csrf import STATE_CHANGING, cross_origin_refusal, from_another_site
from .dialect import Dialect
from .errors import GatewayError
from .exchange import ANONYMOUS, PRINCIPAL_KEY
from .gateway import Gateway
from .hardening import BodyDeadline, check_path, http_error, internal_error
from .permissions import ADMIN, METRICS, PROXY, PUBLIC
from .pipeline import handle, proxy, refuse

# Basic alone: browsers read one challenge per header and skip a header that begins with a
# scheme they do not know ("Bearer, Basic ..."), so they would never prompt.
_BROWSER_CHALLENGE = 'Basic realm="ollamux", charset="UTF-8"'


def identity_middleware(gateway: Gateway, *, guard: bool = True) -> Middleware:
    """The middleware; ``guard``: it also is the path guard (no plugin middleware must run
    between the guard and identity)."""
    hooks = gateway.hooks
    routes = gateway.routes
    body = BodyDeadline(gateway.config)  # read at start, as the limits always were

    @web.middleware
    async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
        if guard:
            bounced = check_path(request)
            if bounced is not None:
                return bounced
        try:
            action = routes.action_of(request)
            if request.method in STATE_CHANGING and from_another_site(request):
                refused = await cross_origin_refusal(gateway, request)
                if refused is not None:
                    if action == PROXY:  # a request event like any refusal
                        return await refuse(gateway, request, refused)
                    return refused.response(Dialect.of_path(request.path))
            principal = ANONYMOUS
            if action != PUBLIC:
                try:
                    principal = await hooks.authenticate(request) or ANONYMOUS
                    request[PRINCIPAL_KEY] = principal
                    # No route matched (404/405): identified all the same, so an unknown
                    # caller cannot map which paths exist.
                    if (
                        action is not None
                        and action != PROXY
                        and not await gateway.allowed(principal, action, None)
                    ):
                        raise GatewayError(403, _refusal(action), code="permission_denied")
                except GatewayError as err:
                    return await _refused(gateway, request, action, err)
            data = b""
            if request.body_exists:
                read = await body.read(request)
                if not isinstance(read, bytes):
                    return read  # too large, or too slow
                data = read
            if handler is handle and action == PROXY:
                # The proxied routes: straight to the pipeline with the caller and the body.
                return await proxy(gateway, request, principal, data)
            return await handler(request)
        except web.HTTPException as exc:
            if not guard:
                raise
            return http_error(request, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not guard:
                raise
            return internal_error(request, exc)

    return identify


async def _refused(
    gateway: Gateway, request: web.Request, action: str | None, err: GatewayError
) -> web.StreamResponse:
    """The answer to a caller refused by authentication or the route's permission."""
    if action == PROXY:
        response = await refuse(gateway, request, err)
    else:
        response = err.response(Dialect.of_path(request.path))
    if err.status == 401 and _from_browser(request):
        response.headers["WWW-Authenticate"] = _BROWSER_CHALLENGE
    return response


def _refusal(action: str) -> str:
    if action in (ADMIN, METRICS):
        return "this endpoint needs an admin key"
    return f"not allowed: {action}"


def _from_browser(request: web.Request) -> bool:
    """A page load (``GET`` asking for HTML): offer Basic auth so the browser prompts."""
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")
