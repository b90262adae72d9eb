"""Response transforms that re-frame a backend's answer into the client's dialect.

NDJSON <-> SSE chunk by chunk (lines split across reads are reassembled first), whole JSON
documents at the end, and error answers (any status >= 400, or an error object inside a
stream) rewritten as the client's dialect writes errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ...dialect import NDJSON, SSE, Dialect
from ...errors import error_payload, upstream_error_message
from ...exchange import Exchange, ResponseHead, TaskState
from ...transforms import LineSplitter, ResponseTransform, WholeJsonTransform
from . import ollama_to_openai_response as to_openai
from . import openai_to_ollama_response as to_ollama
from .common import loads

Whole = Callable[[dict[str, Any]], dict[str, Any]]

_SSE_DONE = b"data: [DONE]\n\n"


class _Translating(ResponseTransform):
    """Shared skeleton: pick a mode from the head, buffer whole bodies, convert errors."""

    stream_type = ""  # the backend's streaming content type
    client_type = ""  # what the client gets for a stream

    def __init__(self, exchange: Exchange, whole: Whole) -> None:
        self.exchange = exchange
        self.whole = whole
        self.lines = LineSplitter()
        self.mode = "whole"
        self.status = 200
        self.buffer: list[bytes] = []
        self.failed = False

    def head(self, head: ResponseHead) -> ResponseHead:
        self.status = head.status
        if head.status >= 400:
            self.mode = "error"
        elif head.content_type == self.stream_type:
            self.mode = "stream"
        head.headers.popall("Content-Length", None)
        head.headers["Content-Type"] = (
            self.client_type if self.mode == "stream" else "application/json"
        )
        return head

    def feed(self, data: bytes) -> bytes:
        if self.mode != "stream":
            self.buffer.append(data)
            return b""
        return self._lines(self.lines.feed(data))

    def _lines(self, lines: list[bytes]) -> bytes:
        """Convert complete lines; nothing more once the stream has failed."""
        return b"".join([self.line(line) for line in lines if not self.failed])

    def end(self) -> bytes:
        if self.mode == "stream":
            tail = self._lines(self.lines.flush())
            return tail if self.failed else tail + self.close()
        body = b"".join(self.buffer)
        if self.mode == "error":
            message = upstream_error_message(body)
            self._mark_failed(message)
            return json.dumps(error_payload(self.exchange.dialect, message, self.status)).encode()
        try:
            obj = json.loads(body)
        except ValueError:
            return body
        if not isinstance(obj, dict):
            return body
        if "error" in obj:
            message = upstream_error_message(body)
            return json.dumps(error_payload(self.exchange.dialect, message, self.status)).encode()
        return json.dumps(self.whole(obj)).encode()

    def _mark_failed(self, message: str) -> None:
        self.failed = True
        self.exchange.error = message

    def stream_error(self, message: str) -> bytes:
        """Mark the request failed and render the stream's last words."""
        self._mark_failed(message)
        ex = self.exchange
        ex.outcome = TaskState.FAILED
        ex.stream_broken = True
        payload = json.dumps(error_payload(ex.dialect, message, 500)).encode()
        return b"data: " + payload + b"\n\n" if ex.dialect is Dialect.OPENAI else payload + b"\n"

    def line(self, line: bytes) -> bytes:
        raise NotImplementedError

    def close(self) -> bytes:
        raise NotImplementedError

    def record_usage(self, prompt: int, completion: int) -> None:
        self.exchange.usage = {"prompt_tokens": prompt, "completion_tokens": completion}


class OllamaToOpenAI(_Translating):
    """An Ollama backend's answer for an OpenAI client (NDJSON -> SSE)."""

    stream_type = NDJSON
    client_type = SSE

    def __init__(self, exchange: Exchange, whole: Whole, stream: to_openai.ChatStream) -> None:
        super().__init__(exchange, self._whole_with_usage(whole))
        self.stream = stream

    def _whole_with_usage(self, whole: Whole) -> Whole:
        def convert(obj: dict[str, Any]) -> dict[str, Any]:
            out = whole(obj)
            usage = out.get("usage") or {}
            if "prompt_tokens" in usage:
                self.record_usage(usage["prompt_tokens"], usage.get("completion_tokens", 0))
            return out

        return convert

    def line(self, line: bytes) -> bytes:
        fast = self.stream.content_event_raw(line)
        if fast is not None:
            return fast
        line = line.strip()
        if not line:
            return b""
        try:
            obj = loads(line)
        except ValueError:
            return b""
        event = self.stream.content_event(obj)
        if event is not None:
            return event
        if "error" in obj:
            return self.stream_error(str(obj["error"]))
        return b"".join(
            [b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in self.stream.feed(obj)]
        )

    def close(self) -> bytes:
        if not self.stream.done:
            return self.stream_error("the backend ended the stream without a final message")
        usage = self.stream.usage or {}
        self.record_usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))
        return _SSE_DONE


class OpenAIToOllama(_Translating):
    """An OpenAI backend's answer for an Ollama client (SSE -> NDJSON)."""

    stream_type = SSE
    client_type = NDJSON

    def feed(self, data: bytes) -> bytes:
        if self.mode == "stream":
            self.stream.tick()
        return super().feed(data)

    def __init__(self, exchange: Exchange, whole: Whole, stream: to_ollama.ChatStream) -> None:
        super().__init__(exchange, self._whole_with_usage(whole))
        self.stream = stream

    def _whole_with_usage(self, whole: Whole) -> Whole:
        def convert(obj: dict[str, Any]) -> dict[str, Any]:
            usage = obj.get("usage") or {}
            self.record_usage(
                int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            )
            return whole(obj)

        return convert

    def line(self, line: bytes) -> bytes:
        if not line.startswith(b"data:"):
            return b""
        payload = line[5:].strip()
        if payload == b"[DONE]":
            return self._finish()
        try:
            obj = loads(payload)
        except ValueError:
            return b""
        fast = self.stream.content_line(obj)
        if fast is not None:
            return fast
        if obj.get("error"):
            err = obj["error"]
            return self.stream_error(str(err.get("message", err) if isinstance(err, dict) else err))
        return b"".join([json.dumps(o).encode() + b"\n" for o in self.stream.feed(obj)])

    def _finish(self) -> bytes:
        out = self.stream.finish_stream()
        if not out:
            return b""
        final = out[-1]
        self.record_usage(final["prompt_eval_count"], final["eval_count"])
        return b"".join([json.dumps(o).encode() + b"\n" for o in out])

    def close(self) -> bytes:
        return self._finish()


class ListingTransform(WholeJsonTransform):
    """A listing from any backend in the client's shape, whatever shape it came in.

    Listings fan out to many backends at once over one exchange, so per-backend state
    cannot be kept: the shape of the body (``models`` or ``data``) tells where it came from.
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def rewrite(self, obj: Any) -> Any:
        if not isinstance(obj, dict):
            return obj
        if self.path == "/v1/models" and "models" in obj:
            return to_openai.model_list(obj)
        if self.path == "/api/tags" and "data" in obj:
            return to_ollama.tags_response(obj)
        if self.path == "/api/ps" and "data" in obj:
            return to_ollama.ps_response(obj)
        return obj
