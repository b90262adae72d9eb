"""Small helpers shared by both translation directions: ids, clocks, option tables, the
checks every field a translation reads goes through, and the line reassembly of streams."""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import math
import re
import struct
import time
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any, TypeGuard, cast

from ...errors import GatewayError
from ...exchange import random16
from ...transforms import BadUpstreamAnswer

# Sampling options with the same meaning (and name) in both APIs.
SHARED_OPTIONS = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty")

# The longest line (one NDJSON line, one SSE line) a translated stream accepts.
DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024


# A str as ``json.dumps`` writes it (ASCII, escaped), without its per-call overhead.
json_string: Callable[[str], str] = encode_basestring_ascii


def json_template(obj: Any, *marks: str) -> bytes:
    """``obj`` as ``json.dumps`` writes it, with each of ``marks`` (string members, in
    order) left as ``%b`` for their JSON: made once from the builder of the dict itself,
    so that an event written from it cannot differ from the dict's."""
    out = json.dumps(obj).encode().replace(b"%", b"%%")
    for mark in marks:
        out = out.replace(json_string(mark).encode(), b"%b")
    return out


class Unreadable(BadUpstreamAnswer, ValueError):
    """A backend answer (or one line of it) a translation cannot understand."""


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``chatcmpl-...``, ``call_...``)."""
    return f"{prefix}{random16().hex()[:24]}"  # pooled: no getrandom call per id


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
        except (ValueError, OverflowError):
            pass
    return int(time.time())


def iso_of(unix: Any) -> str:
    """An Ollama timestamp for seconds since the epoch (now when absent)."""
    if isinstance(unix, int | float) and not isinstance(unix, bool) and 0 < unix < 253402300800:
        return _dt.datetime.fromtimestamp(unix, _dt.UTC).isoformat().replace("+00:00", "Z")
    return now_iso()


def bad_request(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param)


# --- request checks (a 400 naming the field) ------------------------------------------


def go_type(value: Any) -> str:
    """The name Go's ``%T`` prints for a decoded JSON value (Ollama's error texts)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"


def is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked(
    body: dict[str, Any],
    key: str,
    fits: Callable[[Any], bool],
    what: str,
    param: str | None,
    label: str | None,
) -> Any:
    """``body[key]`` when absent or of the wanted kind; else a 400 naming the field."""
    value = body.get(key)
    if value is not None and not fits(value):
        name = param or key
        raise bad_request(f"'{label or name}' must be {what}, not {_kind(value)}", name)
    return value


def want_number(
    body: dict[str, Any], key: str, param: str | None = None, label: str | None = None
) -> Any:
    return _checked(body, key, is_number, "a number", param, label)


def want_int(
    body: dict[str, Any], key: str, param: str | None = None, label: str | None = None
) -> Any:
    value = _checked(body, key, _integral, "an integer", param, label)
    return None if value is None else int(value)


def _integral(value: Any) -> bool:
    """An int, or a float that is a whole number (``inf`` and ``nan`` are not)."""
    return is_int(value) or (is_number(value) and math.isfinite(value) and value == int(value))


def want_str(
    body: dict[str, Any], key: str, param: str | None = None, label: str | None = None
) -> str | None:
    return cast("str | None", _checked(body, key, _IS_STR, "a string", param, label))


def want_bool(
    body: dict[str, Any], key: str, param: str | None = None, label: str | None = None
) -> bool | None:
    return cast("bool | None", _checked(body, key, _IS_BOOL, "true or false", param, label))


def want_dict(
    body: dict[str, Any], key: str, param: str | None = None, label: str | None = None
) -> dict[str, Any] | None:
    return cast("dict[str, Any] | None", _checked(body, key, _IS_DICT, "an object", param, label))


def want_list(
    body: dict[str, Any], key: str, param: str | None = None, label: str | None = None
) -> list[Any] | None:
    return cast("list[Any] | None", _checked(body, key, _IS_LIST, "a list", param, label))


def _is(kind: type) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, kind)


# made once: the checks run for every field of every translated request
_IS_STR, _IS_BOOL, _IS_DICT, _IS_LIST = _is(str), _is(bool), _is(dict), _is(list)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "null"


def stop_list(value: Any, param: str = "stop") -> list[str] | None:
    """``stop`` as a list of strings (OpenAI allows a string or a list)."""
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return list(value)
    if isinstance(value, list):
        bad = next(s for s in value if not isinstance(s, str))
        raise bad_request(f"invalid type for '{param}' field: {go_type(bad)}", param)
    raise bad_request(f"'{param}' must be a string or a list of strings", param)


def check_base64(data: Any, param: str, label: str | None = None) -> str:
    """``data`` if it is standard base64 (as Go's ``[]byte`` fields require), else a 400."""
    name = label or param
    if not isinstance(data, str):
        raise bad_request(f"'{name}' must hold base64 strings, not {_kind(data)}", param)
    try:
        base64.b64decode(data.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise bad_request(f"'{name}' holds data that is not valid base64", param) from exc
    return data


def ollama_extensions(body: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    """``options`` (under the converted ones) and ``keep_alive``, for an Ollama backend."""
    options = want_dict(body, "options")
    if options:
        out["options"] = {**options, **out.get("options", {})}
    keep_alive = body.get("keep_alive")
    if keep_alive is not None:
        if isinstance(keep_alive, bool) or not isinstance(keep_alive, int | float | str):
            raise bad_request(
                "'keep_alive' must be a number of seconds or a duration", "keep_alive"
            )
        out["keep_alive"] = keep_alive
    return out


_DURATION_PART = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")


def is_zero_duration(value: Any) -> bool:
    """Whether ``keep_alive`` means "unload now": ``0`` or a Go duration string worth 0."""
    if is_number(value):
        return bool(value == 0)
    if not isinstance(value, str):
        return False
    text = value.strip().lstrip("+")
    if text == "0":
        return True
    if not text or _DURATION_PART.sub("", text):
        return False
    return all(float(n) == 0 for n, _unit in _DURATION_PART.findall(text))


# --- embeddings ------------------------------------------------------------------------


def floats_to_base64(vector: list[float]) -> str:
    """An embedding as OpenAI's ``encoding_format: base64`` sends it (little-endian f32);
    ``Unreadable`` when it holds what a 32-bit float cannot (a number too large, not a
    number)."""
    try:
        packed = struct.pack(f"<{len(vector)}f", *vector)
    except (struct.error, OverflowError) as exc:
        raise Unreadable(f"an embedding value that is not a 32-bit float: {exc}") from exc
    return base64.b64encode(packed).decode()


def base64_to_floats(text: str) -> list[float]:
    raw = base64.b64decode(text)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


# --- parsing backend answers -------------------------------------------------------------

_DECODER = json.JSONDecoder()


def loads(data: bytes) -> Any:
    """``json.loads`` for one stripped JSON document, without its per-call overhead
    (encoding detection, whitespace scans): this runs once per streamed line. Invalid
    UTF-8 is decoded with replacement characters: the text around it is kept."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
    obj, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return obj


# One JSON string that is not empty, exactly: what the raw fast paths copy as it is. A run
# of plain characters is taken at once (possessive: nothing to backtrack into), then each
# escape with the run after it; a string without escapes never enters that loop.
TEXT_STRING = re.compile(
    rb'"(?!")[^"\\\x00-\x1f]*+(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*+)*+"'
)


# A line break, as ``in`` looks for it in bytes: an int is looked for with memchr, much
# faster than a one-byte needle.
NEWLINE = ord("\n")

# Such strings, one per line: a JSON string holds no raw line break, so this matches
# exactly when each line is one (one scan for a read's strings, not a call for each).
_TEXT_LINES = re.compile(TEXT_STRING.pattern + rb"(?:\n" + TEXT_STRING.pattern + rb")*+")


def text_lines(joined: bytes, block: bytes) -> bool:
    """Whether ``joined`` is non-empty JSON strings, one per line, and ``block``, where
    they come from, is UTF-8: then they may be copied as they are."""
    if _TEXT_LINES.fullmatch(joined) is None:
        return False
    if block.isascii():  # most text is; a word at a time, no string made
        return True
    try:
        block.decode()
    except UnicodeDecodeError:
        return False
    return True


def all_text(values: list[bytes], block: bytes) -> bool:
    """``text_lines`` for the strings ``values`` (one at least)."""
    return text_lines(b"\n".join(values), block)


def loads_strict(data: bytes) -> Any:
    """As ``loads``, but invalid UTF-8 is an error (the fast paths copy bytes as they are)."""
    text = data.decode()
    obj, end = _DECODER.raw_decode(text)
    if end != len(text):
        raise ValueError("extra data after the JSON document")
    return obj


def answer_of(body: bytes) -> dict[str, Any]:
    """A whole backend answer: one JSON object, else ``Unreadable``."""
    try:
        obj = loads(body.strip(b" \t\r\n"))
    except ValueError as exc:
        raise Unreadable(f"not a JSON document ({_preview(body)})") from exc
    if not isinstance(obj, dict):
        raise Unreadable(f"a JSON {type(obj).__name__} where an object was expected")
    return obj


def _preview(body: bytes) -> str:
    text = body[:60].decode("utf-8", "replace")
    return repr(text) + ("..." if len(body) > 60 else "")


def need(ok: bool, what: str) -> None:
    """Give up on an answer whose shape is not what the API promises."""
    if not ok:
        raise Unreadable(what)


def count_of(obj: dict[str, Any], key: str) -> int:
    """A token count from an answer: absent or null is 0; anything but a non-negative
    integer is not understood."""
    value = obj.get(key)
    if value is None:
        return 0
    need(is_int(value) and value >= 0, f"'{key}' is not a token count")
    return int(value)


def text_of(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    need(isinstance(value, str), f"'{key}' is not a string")
    return str(value)


class LineTooLong(Unreadable):
    pass


class Lines:
    """Reassembles lines split across reads, in linear time (the pieces of a long line are
    kept in a list and joined once); a line longer than ``limit`` raises ``LineTooLong``."""

    __slots__ = ("_parts", "limit", "pending")

    def __init__(self, limit: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self._parts: list[bytes] = []
        self.pending = 0  # bytes of a line whose end has not come yet
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        block = self.block(data)
        return [] if block is None else block.split(b"\n")

    def block(self, data: bytes) -> bytes | None:
        """The lines ``data`` completes, as one block (joined by newlines, without the
        last one); ``None`` when it completes none."""
        cut = data.rfind(b"\n")
        if cut < 0:
            self._parts.append(data)
            self.pending += len(data)
            if self.pending > self.limit:
                self._parts, self.pending = [], 0
                raise LineTooLong(f"a line longer than {self.limit} bytes")
            return None
        if self._parts:
            self._parts.append(data[:cut])
            head = b"".join(self._parts)
        else:
            head = data[:cut]
        rest = data[cut + 1 :]
        self._parts = [rest] if rest else []
        self.pending = len(rest)
        if len(head) > self.limit and max(map(len, head.split(b"\n"))) > self.limit:
            raise LineTooLong(f"a line longer than {self.limit} bytes")
        if self.pending > self.limit:
            self._parts, self.pending = [], 0
            raise LineTooLong(f"a line longer than {self.limit} bytes")
        return head

    def flush(self) -> list[bytes]:
        rest = b"".join(self._parts)
        self._parts, self.pending = [], 0
        return [rest] if rest.strip() else []


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
