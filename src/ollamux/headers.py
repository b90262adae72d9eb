"""Which headers cross the proxy, in each direction."""

from __future__ import annotations

from collections.abc import Mapping

from multidict import CIMultiDict

from .protocol import OWN_REQUEST_HEADERS

# RFC 9110 hop-by-hop headers, plus those the proxy recomputes itself.
HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection",
        "Keep-Alive",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Host",
        "Content-Length",
    )
)

# The client's own credentials never reach a backend; backends get their configured ones.
CLIENT_CREDENTIALS = frozenset({"authorization", "x-api-key", "cookie", "api-key"})

_NOT_TO_UPSTREAM = HOP_BY_HOP | CLIENT_CREDENTIALS | OWN_REQUEST_HEADERS | {"accept-encoding"}
_NOT_TO_CLIENT = HOP_BY_HOP | {"content-encoding", "date", "server", "set-cookie"}


def upstream_headers(
    client: Mapping[str, str], extra: Mapping[str, str], peer: str | None
) -> CIMultiDict[str]:
    """Headers for the backend: the client's, minus hop-by-hop and credentials, plus the
    backend's configured ones and ``X-Forwarded-For``."""
    out: CIMultiDict[str] = CIMultiDict()
    for k, v in client.items():
        if k.lower() not in _NOT_TO_UPSTREAM:
            out.add(k, v)
    if peer:
        prior = out.get("X-Forwarded-For")
        out["X-Forwarded-For"] = f"{prior}, {peer}" if prior else peer
    for k, v in extra.items():
        out[k] = v
    return out


def client_headers(upstream: Mapping[str, str]) -> CIMultiDict[str]:
    """Headers for the client: the backend's, minus hop-by-hop and what aiohttp sets."""
    out: CIMultiDict[str] = CIMultiDict()
    for k, v in upstream.items():
        if k.lower() not in _NOT_TO_CLIENT:
            out.add(k, v)
    return out
