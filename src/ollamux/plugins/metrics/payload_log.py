"""Debug payload logging (``server.debug_payloads``): request bodies, response chunks.

For diagnosing translation problems. Secrets (``Authorization``, API keys, tokens) and
images (base64 blobs, ``data:`` URLs) are replaced by short placeholders before anything
is written, so a debug log can be shared.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .usage import UsageTransform

if TYPE_CHECKING:
    from ...exchange import Exchange

log = logging.getLogger("ollamux.payload")

SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "x-ollamux-internal"}
)
SECRET_FIELDS = frozenset(
    {"api_key", "apikey", "key", "password", "secret", "token", "access_token", "authorization"}
)
# A run of base64 this long is an image or a file, not text anyone needs to read.
_BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{200,}={0,2}")
_DATA_URL = re.compile(r"^data:([\w/+.-]+);base64,", re.I)
MAX_CHUNK_LOG = 2000


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def redact(value: Any, key: str = "") -> Any:
    """A copy of a JSON value with secrets and images replaced by placeholders."""
    if key.lower() in SECRET_FIELDS and value:
        return "***"
    if key == "images" and isinstance(value, list):
        return [f"<image {len(v)} chars>" if isinstance(v, str) else v for v in value]
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    if isinstance(value, str):
        m = _DATA_URL.match(value)
        if m:
            return f"<{m.group(1)} data URL {len(value)} chars>"
        if len(value) >= 200 and _BASE64_RUN.fullmatch(value.encode()):
            return f"<base64 {len(value)} chars>"
    return value


def redact_bytes(data: bytes) -> str:
    """A stream chunk as text, long base64 runs cut out, truncated for the log."""
    cleaned = _BASE64_RUN.sub(lambda m: b"<base64 %d chars>" % len(m.group(0)), data)
    text = cleaned.decode("utf-8", errors="replace")
    if len(text) > MAX_CHUNK_LOG:
        text = text[:MAX_CHUNK_LOG] + f"...<{len(text) - MAX_CHUNK_LOG} more chars>"
    return text


def log_request(exchange: Exchange) -> None:
    if exchange.json is not None:
        body: Any = redact(exchange.json)
    else:
        body = redact_bytes(exchange.body) if exchange.body else None
    log.info(
        "request task=%s %s %s headers=%s body=%s",
        exchange.id,
        exchange.method,
        exchange.path,
        json.dumps(redact_headers(exchange.headers)),
        json.dumps(body),
    )


class PayloadLogTransform(UsageTransform):
    """Reads token counts like ``UsageTransform`` and also logs each chunk of the answer as
    the client receives it; changes nothing."""

    __slots__ = ("n", "task")

    def __init__(self, exchange: Exchange) -> None:
        super().__init__()
        self.task = exchange.id
        self.n = 0

    def feed(self, data: bytes) -> bytes:
        self.n += 1
        log.info("chunk task=%s #%d %s", self.task, self.n, redact_bytes(data))
        return super().feed(data)

    def end(self) -> bytes:
        log.info("end task=%s chunks=%d", self.task, self.n)
        return super().end()
