"""Small helpers shared by both translation directions: ids, clocks, option tables."""

from __future__ import annotations

import base64
import datetime as _dt
import json
import secrets
import struct
import time
from typing import Any

from ...errors import GatewayError

# Sampling options with the same meaning (and name) in both APIs.
SHARED_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``chatcmpl-...``, ``call_...``)."""
    return f"{prefix}{secrets.token_hex(12)}"


def now_iso() -> str:
    """The current time as Ollama writes ``created_at`` (RFC 3339, UTC, with ``Z``)."""
    now = time.time()
    second = int(now)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)) + (
        f".{int((now - second) * 1e6):06d}Z"
    )


def unix_of(iso: Any) -> int:
    """Seconds since the epoch for an Ollama timestamp; now when it cannot be read."""
    if isinstance(iso, str) and iso:
        text = iso.replace("Z", "+00:00")
        head, dot, rest = text.partition(".")
        if dot:  # Go writes nanoseconds; Python reads at most microseconds
            digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
            text = head + "." + digits[:6] + rest[len(digits) :]
        try:
            return int(_dt.datetime.fromisoformat(text).timestamp())
        except ValueError:
            pass
    return int(time.time())


def iso_of(unix: Any) -> str:
    """An Ollama timestamp for seconds since the epoch (now when absent)."""
    if isinstance(unix, int | float) and not isinstance(unix, bool) and unix > 0:
        return _dt.datetime.fromtimestamp(unix, _dt.UTC).isoformat().replace("+00:00", "Z")
    return now_iso()


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param)


def stop_list(value: Any, param: str = "stop") -> list[str] | None:
    """``stop`` as a list of strings (OpenAI allows a string or a list)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    raise bad_request(f"'{param}' must be a string or a list of strings", param)


def floats_to_base64(vector: list[float]) -> str:
    """An embedding as OpenAI's ``encoding_format: base64`` sends it (little-endian f32)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def base64_to_floats(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


_DECODER = json.JSONDecoder()


def loads(data: bytes) -> Any:
    """``json.loads`` for one stripped JSON document, without its per-call overhead
    (encoding detection, whitespace scans): this runs once per streamed line."""
    text = data.decode()
    obj, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return obj


def image_mime(data: str) -> str:
    """The MIME type of a base64 image, from its first bytes (JPEG when unknown)."""
    head = base64.b64decode(data[:16] + "=" * (-len(data[:16]) % 4), validate=False)
    if head.startswith(b"\x89PNG"):
        return "image/png"
    if head.startswith(b"GIF8"):
        return "image/gif"
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "image/webp"
    return "image/jpeg"
