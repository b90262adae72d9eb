"""The cross-origin guard: no state-changing request from another site's page.

A browser that once authenticated here with Basic (the jobs page) sends those credentials
with any request to this origin, including a "simple" cross-site ``POST`` (a form, or
``fetch`` with ``Content-Type: text/plain``) that needs no CORS preflight. Such a request
could run chats, submit or cancel jobs, pull or delete models. This guard, asked by the
identity middleware before anything else, refuses with 403 (in the endpoint's dialect) any
``POST``, ``PUT``, ``PATCH`` or ``DELETE`` whose ``Sec-Fetch-Site`` is ``cross-site`` or whose
``Origin`` is present and not this server's own, unless a plugin allows that origin
(``ollamux_cross_origin_allowed``: the ``cors`` plugin does for ``cors.allow_origins``).

API clients (SDKs, curl) send neither header and are not affected. The own origin is the
``Host`` the request was sent to (or the ``X-Forwarded-Host`` of a reverse proxy), with
either scheme (behind a TLS-terminating proxy the gateway itself speaks plain HTTP).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import hdrs, web
from multidict import istr

from .errors import GatewayError
from .gateway import Gateway

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_SEC_FETCH_SITE = istr("Sec-Fetch-Site")  # made once: a plain str is case-folded per lookup


def from_another_site(request: web.Request) -> bool:
    """Whether a page on another site sent ``request``: ``Sec-Fetch-Site: cross-site``, or
    an ``Origin`` that is not the gateway's own. Plain API clients send neither."""
    headers = request.headers
    if headers.get(_SEC_FETCH_SITE, "").lower() == "cross-site":
        return True
    origin = headers.get(hdrs.ORIGIN)
    return origin is not None and not _own(origin, request)


async def cross_origin_refusal(gateway: Gateway, request: web.Request) -> GatewayError | None:
    """The 403 for a state-changing request from another site, or ``None``. Asked by the
    identity middleware first thing, once ``from_another_site`` said the request is."""
    if not from_another_site(request):
        return None
    origin = request.headers.get("Origin")
    if origin is not None and await gateway.hooks.cross_origin_allowed(gateway, origin):
        return None
    shown = origin if origin is not None else "another site"
    return GatewayError(
        403,
        f"cross-origin request from {shown} refused: this origin is not allowed"
        " (cors.allow_origins)",
        code="cross_origin_refused",
    )


def _own(origin: str, request: web.Request) -> bool:
    """Whether ``origin`` is the gateway's own: the ``Host`` the request was sent to, or
    the ``X-Forwarded-Host`` a reverse proxy in front set (a page cannot set that header
    on a cross-site request without a preflight, which CORS refuses)."""
    if same_origin(origin, request.host):
        return True
    forwarded = request.headers.get("X-Forwarded-Host")
    return forwarded is not None and same_origin(origin, forwarded.split(",")[0].strip())


def same_origin(origin: str, host: str) -> bool:
    """Whether ``origin`` (``scheme://host[:port]``) names the server at ``host`` (the
    ``Host`` header), default ports and letter case aside."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    try:
        target = urlsplit(f"{parts.scheme}://{host}")
        target_port = target.port
    except ValueError:
        return False
    default = 443 if parts.scheme == "https" else 80
    return (parts.hostname, port or default) == (target.hostname, target_port or default)
