"""Asking one server whether it is up and what it serves.

Ollama: ``GET /api/tags`` (its models) and ``GET /api/ps`` (the models in memory), asked at
once. OpenAI-compatible: ``GET /v1/models``. Each probe has a total timeout, so a hung
server (a dead SSH tunnel that accepts and never answers) costs at most that long.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ... import __version__
from ...backend import Backend
from ...dialect import Dialect
from ...listing import LISTING_LIMIT
from ...proxy import BodyTooLarge, read_whole


@dataclass
class ProbeResult:
    ok: bool
    models: set[str] = field(default_factory=set)
    loaded: set[str] | None = None  # None: unknown (not Ollama, or /api/ps failed)
    error: str = ""


# Probes name themselves, so a backend's logs (and test fakes) can tell them from traffic.
# They close their connections: otherwise every probe of every backend (or scanned port)
# would leave an idle keep-alive connection in the shared pool, which aiohttp hands out
# first-in first-out, so requests would cycle through hundreds of cold connections.
PROBE_HEADERS = {"User-Agent": f"ollamux-probe/{__version__}", "Connection": "close"}


async def probe(
    session: aiohttp.ClientSession,
    url: str,
    api: Dialect,
    headers: Mapping[str, str],
    timeout_s: float,
) -> ProbeResult:
    """Probe the server at ``url``; never raises for network trouble."""
    limit = aiohttp.ClientTimeout(total=timeout_s)
    if api is Dialect.OPENAI:
        listing = await _get_json(session, f"{url}/v1/models", headers, limit)
        if isinstance(listing, str):
            return ProbeResult(False, error=listing)
        return ProbeResult(True, models=_names(listing, "data", "id"))
    tags, ps = await asyncio.gather(
        _get_json(session, f"{url}/api/tags", headers, limit),
        _get_json(session, f"{url}/api/ps", headers, limit),
    )
    if isinstance(tags, str):
        return ProbeResult(False, error=tags)
    loaded = None if isinstance(ps, str) else _names(ps, "models", "name")
    return ProbeResult(True, models=_names(tags, "models", "name"), loaded=loaded)


def apply_probe(backend: Backend, result: ProbeResult) -> bool:
    """Record a probe's result on the backend; True when it just became healthy."""
    backend.last_probe = time.time()
    if not result.ok:
        backend.healthy = False
        backend.failures += 1
        backend.last_error = result.error
        return False
    revived = not backend.healthy
    backend.healthy = True
    backend.failures = 0
    backend.last_error = ""
    if not backend.configured_models:
        backend.models = result.models
    if result.loaded is not None:
        backend.loaded_models = result.loaded
    return revived


async def _get_json(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    limit: aiohttp.ClientTimeout,
) -> dict[str, Any] | str:
    """The JSON object at ``url``, or a short reason why not."""
    try:
        async with session.get(url, headers={**PROBE_HEADERS, **headers}, timeout=limit) as resp:
            if resp.status != 200:
                return f"GET {url} answered {resp.status}"
            data = json.loads(await read_whole(resp, LISTING_LIMIT))
    except TimeoutError:
        return f"GET {url} timed out"
    except (aiohttp.ClientError, ValueError, BodyTooLarge) as exc:
        return f"GET {url} failed: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    if not isinstance(data, dict):
        return f"GET {url}: not a JSON object"
    return data


def _names(doc: dict[str, Any], list_key: str, name_key: str) -> set[str]:
    items = doc.get(list_key)
    if not isinstance(items, list):
        return set()
    return {str(i[name_key]) for i in items if isinstance(i, dict) and i.get(name_key)}
