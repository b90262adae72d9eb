"""Who is calling, for every route: the core's identity middleware.

It runs after the path guard and before the body is read. It first refuses a
state-changing request from another site (``csrf``). Then it asks the
``ollamux_authenticate`` hook for the caller (unless the route is public), leaves the
principal on the request, and asks ``ollamux_permission_allowed`` for the action the route
declared. Proxied routes check their finer actions (``models.manage``, ``model.use``) in the
pipeline, once the body is known; their refusals here still become request events.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .csrf import STATE_CHANGING, cross_origin_refusal
from .dialect import Dialect
from .errors import GatewayError
from .exchange import ANONYMOUS, PRINCIPAL_KEY
from .gateway import Gateway
from .permissions import ADMIN, METRICS, PROXY, PUBLIC
from .pipeline import refuse

# Basic alone: browsers read one challenge per header and skip a header that begins with a
# scheme they do not know ("Bearer, Basic ..."), so they would never prompt.
_BROWSER_CHALLENGE = 'Basic realm="ollamux", charset="UTF-8"'


def identity_middleware(gateway: Gateway) -> Middleware:
    hooks = gateway.hooks
    routes = gateway.routes

    @web.middleware
    async def identify(request: web.Request, handler: Handler) -> web.StreamResponse:
        action = routes.action_of(request)
        if request.method in STATE_CHANGING:
            refused = await cross_origin_refusal(gateway, request)
            if refused is not None:
                if action == PROXY:  # a request event like any refusal
                    return await refuse(gateway, request, refused)
                return refused.response(Dialect.of_path(request.path))
        if action == PUBLIC:
            return await handler(request)
        try:
            principal = await hooks.authenticate(request) or ANONYMOUS
            request[PRINCIPAL_KEY] = principal
            # No route matched (404/405): identified all the same, so an unknown caller
            # cannot map which paths exist.
            if (
                action is not None
                and action != PROXY
                and not await gateway.allowed(principal, action, None)
            ):
                raise GatewayError(403, _refusal(action), code="permission_denied")
        except GatewayError as err:
            if action == PROXY:
                response = await refuse(gateway, request, err)
            else:
                response = err.response(Dialect.of_path(request.path))
            if err.status == 401 and _from_browser(request):
                response.headers["WWW-Authenticate"] = _BROWSER_CHALLENGE
            return response
        return await handler(request)

    return identify


def _refusal(action: str) -> str:
    if action in (ADMIN, METRICS):
        return "this endpoint needs an admin key"
    return f"not allowed: {action}"


def _from_browser(request: web.Request) -> bool:
    """A page load (``GET`` asking for HTML): offer Basic auth so the browser prompts."""
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")
