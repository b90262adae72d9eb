"""Listings that span the fleet: ``/api/tags``, ``/api/ps`` and ``/v1/models``.

The listing request goes to every backend the balancer names, through the same
translation and response transforms as any request, and the answers are merged, each model
once (the first backend to list it wins).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import aiohttp
from aiohttp import web

from .backend import Backend
from .endpoints import ENDPOINTS, Kind
from .errors import GatewayError
from .exchange import Exchange, LocalResponse, ResponseHead
from .headers import client_headers
from .proxy import BodyTooLarge, read_whole, request_args, upstream_request

log = logging.getLogger("ollamux.listing")

# The largest listing one backend may answer (a few thousand models): a backend sending an
# endless or huge answer counts as failed instead of filling the gateway's memory.
LISTING_LIMIT = 8 * 1024 * 1024

# (method, path) -> (key of the list in the answer, key naming each entry)
LISTING_PATHS: dict[tuple[str, str], tuple[str, str]] = {
    ("GET", e.path): (e.list_key, e.name_key) for e in ENDPOINTS.values() if e.kind is Kind.LISTING
}


async def fanout(exchange: Exchange, backends: list[Backend]) -> web.StreamResponse:
    if not backends:
        raise GatewayError(503, "no healthy backend", headers={"Retry-After": "1"})
    answers = await asyncio.gather(*(_ask(exchange, b) for b in backends))
    good = [a for a in answers if a is not None]
    if not good:
        raise GatewayError(502, "no backend answered the listing")
    list_key, name_key = LISTING_PATHS[(exchange.method, exchange.path)]
    merged: dict[str, Any] = dict(good[0])
    seen: set[str] = set()
    items: list[Any] = []
    for answer in good:
        for item in answer.get(list_key) or []:
            name = item.get(name_key) if isinstance(item, dict) else None
            if name is None or name not in seen:
                if name is not None:
                    seen.add(name)
                items.append(item)
    merged[list_key] = items
    response = web.json_response(merged, headers=exchange.response_headers)
    exchange.status = 200
    return response


async def _ask(exchange: Exchange, backend: Backend) -> dict[str, Any] | None:
    """One backend's listing, translated and transformed; None when it failed."""
    gw = exchange.gateway
    try:
        up = await upstream_request(exchange, backend)
        if isinstance(up, LocalResponse):
            head = ResponseHead(up.status, client_headers({"Content-Type": up.content_type}))
            body = up.body
        else:
            async with gw.session.request(**request_args(exchange, backend, up, None)) as resp:
                body = await read_whole(resp, LISTING_LIMIT)
                head = ResponseHead(resp.status, client_headers(resp.headers))
        if head.status >= 400:
            log.info("listing from %s failed with %d", backend.name, head.status)
            return None
        for t in await gw.hooks.transform_response(exchange, head):
            head = t.head(head)
            body = t.feed(body) + t.end()
        data = json.loads(body)
    except (aiohttp.ClientError, TimeoutError, ValueError, BodyTooLarge) as exc:
        log.info("listing from %s failed: %s", backend.name, exc)
        return None
    return data if isinstance(data, dict) else None
