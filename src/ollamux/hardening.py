"""Request hardening that no plugin can switch off.

- The path guard (first after the access log): refuses non-canonical paths before routing
  and auth can be fooled by them (``//v1/..``, ``/v1/../ollamux/backends``,
  ``/%6Fllamux/backends`` are redirected to the one canonical spelling; control characters
  are a 400), renders aiohttp's own errors (404, 405, 413) as JSON in the endpoint's
  dialect, and turns any unexpected exception into a 500 without a traceback.
- The body deadline (last, after auth): reads the request body within
  ``server.body_timeout_s``, so a client trickling its body cannot hold a handler forever.
- Security headers on every response, streams included.

The guard and the body read run inside the identity middleware (``identity.py``), in one
frame with it; the guard is a middleware of its own (``guard``) only when plugins add
middlewares, which must run between it and identity.

Header sizes are bounded by aiohttp's parser (8190 bytes a line, 128 headers): beyond that
the client gets a 400 before any handler runs.
"""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import unquote

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from multidict import istr
from yarl import URL

from .config import Config
from .dialect import Dialect
from .errors import GatewayError

log = logging.getLogger("ollamux.hardening")


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PREPARED: web.RequestKey[bool] = web.RequestKey("ollamux_prepared", bool)
# The security headers, their case-insensitive names made once (``istr``): a plain ``str``
# is case-folded on every use.
_NOSNIFF = istr("X-Content-Type-Options")
_REFERRER_POLICY = istr("Referrer-Policy")


def install(app: web.Application) -> None:
    """The security headers of every response (the middlewares are ``identity``'s)."""
    app.on_response_prepare.append(_on_prepare)


def canonical_path(decoded: str) -> str:
    """The path with empty and dot segments resolved (RFC 3986 5.2.4), trailing slash kept."""
    segments: list[str] = []
    for seg in decoded.split("/"):
        if seg == "..":
            if segments:
                segments.pop()
        elif seg and seg != ".":
            segments.append(seg)
    out = "/" + "/".join(segments)
    if segments and (decoded.endswith("/") or decoded.endswith("/.") or decoded.endswith("/..")):
        out += "/"
    return out


def _error(
    status: int, message: str, path: str, headers: dict[str, str] | None = None
) -> web.Response:
    return GatewayError(status, message, headers=headers).response(Dialect.of_path(path))


def check_path(request: web.Request) -> web.StreamResponse | None:
    """The guard's first step: a 400 for control characters or a bad encoding, a 308 to
    the canonical path, or ``None`` when the path is fine."""
    raw = request.rel_url.raw_path
    # The usual path is canonical at a glance: nothing escaped, no empty or dot segment,
    # nothing unprintable (a control character). Its canonical form is itself.
    if (
        "%" not in raw
        and "//" not in raw
        and "/." not in raw
        and raw.startswith("/")
        and raw.isprintable()
        and raw == request.path
    ):
        return None
    try:
        return _check_path(request, raw)
    except UnicodeDecodeError:
        return _error(400, "invalid encoding in the request path", request.path)


def _check_path(request: web.Request, raw: str) -> web.StreamResponse | None:
    decoded = unquote(raw, errors="strict") if "%" in raw else raw
    if _CONTROL.search(decoded):
        return _error(400, "invalid characters in the request path", request.path)
    canon = canonical_path(decoded)
    if canon == request.path and "%2f" not in raw.lower():
        return None
    location = URL.build(path=canon, query_string=request.rel_url.query_string)
    return web.Response(status=308, headers={"Location": str(location)})


_KEPT_ERROR_HEADERS = frozenset({"Allow", "Retry-After", "WWW-Authenticate"})


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The guard as a middleware of its own, for when plugin middlewares run after it."""
    bounced = check_path(request)
    if bounced is not None:
        return bounced
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return http_error(request, exc)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        return internal_error(request, exc)


def http_error(request: web.Request, exc: web.HTTPException) -> web.StreamResponse:
    """The guard's answer to an HTTP error raised under it: JSON in the endpoint's dialect
    (re-raises a redirect or an error already JSON, for aiohttp to render)."""
    if exc.status < 400 or exc.content_type == "application/json":
        raise exc
    headers = {k: v for k, v in exc.headers.items() if k in _KEPT_ERROR_HEADERS}
    return _error(exc.status, _message(exc), request.path, headers)


def internal_error(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The guard's answer to an unexpected exception: a 500 without a traceback, logged
    (re-raises once the head went out: aiohttp can only close the connection)."""
    if request.get(_PREPARED):
        raise exc
    log.exception("unexpected error on %s %s", request.method, request.path, exc_info=exc)
    return _error(500, "internal error", request.path)


def _message(exc: web.HTTPException) -> str:
    """The text a handler gave its HTTP error, or the status's reason when it gave none."""
    text = (exc.text or "").strip()
    if not text or text == f"{exc.status}: {exc.reason}":
        return exc.reason.lower()
    return text


class BodyDeadline:
    """Reads a request's body within ``server.body_timeout_s`` (``read``), after auth: the
    body is read only once the caller is known."""

    __slots__ = ("limit", "max_body_mb", "timeout_s")

    def __init__(self, config: Config) -> None:
        self.timeout_s = config.server.body_timeout_s
        self.max_body_mb = config.server.max_body_mb
        self.limit = int(self.max_body_mb * 1024 * 1024)

    async def read(self, request: web.Request) -> bytes | web.StreamResponse:
        """Read the body of a request that has one: the body, else the refusal (413 too
        large, 408 too slow)."""
        declared = request.content_length
        if declared is not None and declared > self.limit:
            # Said too big up front: refused before a byte is read (and no 100 sent).
            response = self._too_large(request)
            response.force_close()
            return response
        if request.headers.get(hdrs.EXPECT, "").lower() == "100-continue":
            await _send_continue(request)
        try:
            # aiohttp keeps the body: handlers read it again for free. A small body
            # usually came in with the headers; then there is nothing to wait for and
            # no timer to arm and cancel (the largest part of this step's cost).
            if request.content.is_eof():
                return await request.read()
            async with asyncio.timeout(self.timeout_s):
                return await request.read()
        except TimeoutError:
            response = _error(408, "request body not received in time", request.path)
            response.force_close()  # the rest of the body will not be read: no keep-alive
            return response
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(request)

    def _too_large(self, request: web.Request) -> web.Response:
        return _error(413, f"request body exceeds {self.max_body_mb:g} MB", request.path)


async def expect_later(request: web.Request) -> None:
    """Every route's ``expect_handler``: aiohttp would answer ``100 Continue`` to any
    ``Expect: 100-continue`` before any middleware ran (before auth and the size check);
    the 100 is sent by ``BodyDeadline`` instead, once the body is really wanted."""
    expect = request.headers.get("Expect", "")
    if expect.lower() != "100-continue":
        raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")


async def _send_continue(request: web.Request) -> None:
    writer = request.writer
    if writer is not None and not request.content.is_eof():
        await writer.write(b"HTTP/%d.%d 100 Continue\r\n\r\n" % request.version)
        await writer.drain()


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    request[_PREPARED] = True
    headers = response.headers
    headers.setdefault(_NOSNIFF, "nosniff")
    headers.setdefault(_REFERRER_POLICY, "no-referrer")
    headers[hdrs.SERVER] = "ollamux"  # not aiohttp's version string
