"""Response transforms: how plugins rewrite a backend's answer on its way to the client.

A plugin's ``ollamux_transform_response`` hook returns a ``ResponseTransform`` once per
response; the core then feeds it the body chunk by chunk. That keeps the per-chunk cost a
plain method call (no hook dispatch per chunk) and leaves untouched responses untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .dialect import Dialect
from .errors import error_payload, upstream_error_message
from .exchange import ResponseHead


class BadUpstreamAnswer(Exception):
    """The backend's answer cannot be understood (raised by a transform's ``head``, ``feed``
    or ``end``). Before any byte reached the client the attempt fails (502, retried on
    another backend); after that the stream ends with an error in the client's dialect."""


class ResponseTransform:
    """Base class: passes everything through unchanged. Override what you need."""

    def head(self, head: ResponseHead) -> ResponseHead:
        """Adjust status and headers (e.g. the content type after translation)."""
        return head

    def feed(self, data: bytes) -> bytes:
        """Transform one chunk of body; may return b"" to hold data back."""
        return data

    def end(self) -> bytes:
        """Called once after the last chunk: flush anything held back."""
        return b""

    def last_words(self, message: str) -> bytes | None:
        """The bytes that end a stream the backend broke mid-way (``None``: the core's
        error event or line in the client's dialect; ``b""``: nothing more). A transform
        that re-frames a stream into events of its own (a translation) ends it with its own
        error event, or with nothing when its answer was already complete."""
        return None


class WholeJsonTransform(ResponseTransform):
    """Rewrite a body that is one JSON document (a listing): held back, parsed once at the
    end, handed to ``rewrite``. A body that is not JSON passes through unchanged."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def head(self, head: ResponseHead) -> ResponseHead:
        head.headers.popall("Content-Length", None)
        return head

    def feed(self, data: bytes) -> bytes:
        self._parts.append(data)
        return b""

    def end(self) -> bytes:
        body = b"".join(self._parts)
        try:
            obj = json.loads(body)
        except ValueError:
            return body
        return json.dumps(self.rewrite(obj)).encode()

    def rewrite(self, obj: Any) -> Any:
        return obj


class LineSplitter:
    """Reassembles lines split across TCP reads; yields complete lines without ``\\n``."""

    __slots__ = ("_rest",)

    def __init__(self) -> None:
        self._rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self._rest:
            data = self._rest + data
        lines = data.split(b"\n")
        self._rest = lines.pop()
        return lines

    def flush(self) -> list[bytes]:
        rest, self._rest = self._rest, b""
        return [rest] if rest.strip() else []


class JsonLinesTransform(ResponseTransform):
    """Rewrite an NDJSON or SSE body object by object, or a plain JSON body as a whole.

    Subclasses implement ``transform(obj)`` returning the objects to emit in its place
    (``[obj]`` to keep it). The framing (NDJSON lines, SSE ``data:`` events, one JSON
    document) is kept as it came. SSE lines that are not JSON (``[DONE]``) pass through.
    """

    def __init__(self) -> None:
        self._lines = LineSplitter()
        self._mode = "json"
        self._whole: list[bytes] = []

    def head(self, head: ResponseHead) -> ResponseHead:
        ct = head.content_type
        if ct == "text/event-stream":
            self._mode = "sse"
        elif ct in ("application/x-ndjson", "application/jsonl"):
            self._mode = "ndjson"
        else:
            self._mode = "json" if ct.endswith("json") else "raw"
        if self._mode != "raw":
            head.headers.popall("Content-Length", None)
        return head

    def transform(self, obj: Any) -> Iterable[Any]:
        return [obj]

    def feed(self, data: bytes) -> bytes:
        if self._mode == "raw":
            return data
        if self._mode == "json":
            self._whole.append(data)
            return b""
        return b"".join(self._line(line) for line in self._lines.feed(data))

    def end(self) -> bytes:
        if self._mode == "json":
            body = b"".join(self._whole)
            try:
                obj = json.loads(body)
            except ValueError:
                return body
            out = list(self.transform(obj))
            return json.dumps(out[0]).encode() if out else b""
        if self._mode == "raw":
            return b""
        return b"".join(self._line(line) for line in self._lines.flush())

    def _line(self, line: bytes) -> bytes:
        if self._mode == "sse":
            if not line.startswith(b"data:"):
                return line + b"\n"
            payload = line[5:].strip()
            try:
                obj = json.loads(payload)
            except ValueError:
                return line + b"\n"
            events = [b"data: " + json.dumps(o).encode() for o in self.transform(obj)]
            return b"\n\n".join(events) + b"\n" if events else b""
        if not line.strip():
            return line + b"\n"
        try:
            obj = json.loads(line)
        except ValueError:
            return line + b"\n"
        return b"".join(json.dumps(o).encode() + b"\n" for o in self.transform(obj))


class DialectErrorBody(WholeJsonTransform):
    """An error answer in the dialect of the endpoint called, whatever the backend sent:
    plain text (``404 page not found``), ``{"detail": ...}``, or the other dialect's shape.
    A body already in the right shape passes unchanged."""

    def __init__(self, dialect: Dialect, status: int) -> None:
        super().__init__()
        self.dialect = dialect
        self.status = status

    def head(self, head: ResponseHead) -> ResponseHead:
        head.headers["Content-Type"] = "application/json"
        return super().head(head)

    def end(self) -> bytes:
        body = b"".join(self._parts)
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        if not _in_dialect(obj, self.dialect):
            obj = error_payload(self.dialect, upstream_error_message(body), self.status)
        return json.dumps(obj).encode()


def _in_dialect(obj: Any, dialect: Dialect) -> bool:
    if not isinstance(obj, dict):
        return False
    error = obj.get("error")
    if dialect is Dialect.OPENAI:
        return isinstance(error, dict) and isinstance(error.get("message"), str)
    if dialect is Dialect.ANTHROPIC:
        return (
            obj.get("type") == "error"
            and isinstance(error, dict)
            and isinstance(error.get("type"), str)
            and isinstance(error.get("message"), str)
        )
    return isinstance(error, str)
