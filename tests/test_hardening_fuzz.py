"""Fuzzing the request path with hypothesis: whatever arrives, no 500 and no hang.

The gateway (auth on, CORS on, a fake Ollama behind it) runs in its own thread and event
loop; hypothesis drives it over a raw socket so that any method, path, header and body
reach the server exactly as generated.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ollamux import testing
from ollamux.app import create_app
from ollamux.config_loader import build_config
from ollamux.plugin_manager import build_plugin_manager
from tests.auth_support import ADMIN, ALICE, PluginRoutes, keyed
from tests.fakes.ollama_backend import FakeOllama
from tests.fakes.openai_backend import FakeOpenAI

SEGMENTS = [
    "api", "v1", "ollamux", "__proxy", "tasks", "jobs", "metrics", "status", "health",
    "backends", "chat", "generate", "completions", "models", "tags", "ps", "pull", "embed",
    "openapi.json", "prompt", "result", "list", "..", ".", "", "%2e%2e", "%2F", "%00",
    "%ff", "%6Fllamux", "llama3.2:latest", "a;b", "%25", "~", "*",
]  # fmt: skip
MODELS = ["llama3.2:latest", "qwen2.5:7b", "", "x" * 300, "../etc", "*"]


@web.middleware
async def _refuse_what_the_fake_cannot_parse(
    request: web.Request, handler: Handler
) -> web.StreamResponse:
    """A real Ollama answers garbage with a 4xx; the scripted fake may crash on it instead,
    and a backend's 500 relayed as-is is not the gateway's fault."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception:
        return web.json_response({"error": "bad request"}, status=400)


class _Server:
    """A gateway and a fake backend (Ollama, or OpenAI-compatible) served from a
    background thread."""

    def __init__(self, tmp: Path, api: str = "ollama", debug_payloads: bool = False) -> None:
        self.tmp = tmp
        self.api = api
        self.debug_payloads = debug_payloads
        self.port = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        backend = FakeOllama().app() if self.api == "ollama" else FakeOpenAI().app()
        backend.middlewares.append(_refuse_what_the_fake_cannot_parse)
        fake = web.AppRunner(backend)
        await fake.setup()
        fake_site = web.TCPSite(fake, "127.0.0.1", 0)
        await fake_site.start()
        fake_port = fake.addresses[0][1]
        data = keyed(f"http://127.0.0.1:{fake_port}", api=self.api)
        data |= {"cors": {"allow_origins": ["https://a.example"]}}
        data |= {
            "server": {
                "max_body_mb": 0.05,
                "body_timeout_s": 5,
                "debug_payloads": self.debug_payloads,
            }
        }
        cfg = build_config(testing.test_config(data, self.tmp))
        pm = build_plugin_manager(cfg)
        pm.register(PluginRoutes(), name="routes")
        gw = web.AppRunner(create_app(cfg, pm), handler_cancellation=True)
        await gw.setup()
        await web.TCPSite(gw, "127.0.0.1", 0).start()
        self.port = gw.addresses[0][1]
        self._ready.set()
        await self._stop.wait()
        await gw.cleanup()
        await fake.cleanup()

    def __enter__(self) -> _Server:
        self._thread.start()
        assert self._ready.wait(30), "the gateway did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self._loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    with _Server(tmp_path_factory.mktemp("fuzz")) as s:
        yield s


ENDPOINTS = [
    "/api/chat", "/api/generate", "/api/embed", "/api/tags", "/api/ps", "/api/show",
    "/api/version", "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models",
    "/v1/models/llama3.2:latest", "/tasks/status", "/jobs", "/ollamux/health", "/metrics",
]  # fmt: skip

paths = st.one_of(
    st.sampled_from(ENDPOINTS),
    st.sampled_from(ENDPOINTS),
    st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=6).map(lambda s: "/" + "/".join(s)),
    st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=40).map(
        lambda t: "/" + quote(t, safe="/%:.;~")
    ),
)
queries = st.one_of(st.just(""), st.text("abc=&%/.?", max_size=12).map(lambda q: "?" + q))
# Mostly valid keys, so that most requests get past auth into the routes behind it.
auths = st.one_of(
    st.sampled_from([f"Bearer {ALICE}", f"Bearer {ADMIN}"]),
    st.sampled_from([f"Bearer {ALICE}", f"Bearer {ADMIN}"]),
    st.sampled_from([None, "Bearer nope", "Bearer ", "Basic !!"]),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=30),
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=200),
    st.builds(
        lambda m, s, extra: json.dumps({"model": m, "stream": s, **extra}).encode(),
        st.sampled_from(MODELS),
        st.sampled_from([True, False, None, "yes"]),
        st.dictionaries(
            st.sampled_from(["prompt", "messages", "name", "input"]), st.text(max_size=8)
        ),
    ),
)


def _send(port: int, method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
    head = f"{method} {target} HTTP/1.1\r\nHost: fuzz\r\nConnection: close\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head.encode("latin-1") + body)
        chunks = []
        while chunk := sock.recv(65536):  # a hang shows as socket.timeout
            chunks.append(chunk)
    return b"".join(chunks)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "FOO"]),
    path=paths,
    query=queries,
    auth=auths,
    api_key=st.one_of(st.none(), st.sampled_from([ALICE, "x"])),
    origin=st.one_of(st.none(), st.sampled_from(["https://a.example", "null"])),
    preflight=st.booleans(),
    content_type=st.sampled_from(["application/json", "text/plain", "multipart/form-data"]),
    body=bodies,
)
def test_no_request_gets_a_500_or_hangs(
    server: _Server,
    method: str,
    path: str,
    query: str,
    auth: str | None,
    api_key: str | None,
    origin: str | None,
    preflight: bool,
    content_type: str,
    body: bytes,
) -> None:
    headers: dict[str, Any] = {"Content-Type": content_type}
    if auth is not None:
        headers["Authorization"] = auth
    if api_key is not None:
        headers["X-API-Key"] = api_key
    if origin is not None:
        headers["Origin"] = origin
    if preflight:
        headers["Access-Control-Request-Method"] = "POST"
    answer = _send(server.port, method, path + query, headers, body)
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith((b"HTTP/1.1 ", b"HTTP/1.0 ")), answer[:200]
    status = int(status_line.split()[1])
    assert status != 500, answer[:500]
    assert b"Traceback" not in answer


# -- wrong types and deep nesting in the fields the gateway reads ----------------------------------


@pytest.fixture(scope="module")
def openai_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    with _Server(tmp_path_factory.mktemp("fuzz-openai"), api="openai") as s:
        yield s


@pytest.fixture(scope="module")
def payload_log_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    """An Ollama gateway logging payloads (``server.debug_payloads``): the payload log
    walks every body it logs."""
    with _Server(tmp_path_factory.mktemp("fuzz-debug"), debug_payloads=True) as s:
        yield s


DEEP_MARK = "__deep__"
ANY_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
# Any JSON value, or a marker replaced by lists nested that deep (around the limit, and far
# beyond what a recursive walk survives).
# Hypothesis raises the recursion limit (to about 2 000) while it runs a test, and the
# gateway's thread shares it: the depths that a parser accepts but a recursive walk of the
# body cannot survive lie between about half that limit and the limit.
DEPTHS = (50, 99, 100, 101, 500, 900, 1200, 1500, 1900, 3000)


class Deep(int):
    """A field sent as lists nested this deep."""


FIELD_VALUES = st.one_of(ANY_JSON, st.sampled_from(DEPTHS).map(Deep))
FIELDS = ["model", "stream", "messages", "prompt", "options", "keep_alive", "format", "input"]
# No translation on these: Ollama paths to an Ollama backend, OpenAI paths to an OpenAI one.
OLLAMA_PATHS = ["/api/chat", "/api/generate", "/api/embed", "/api/show", "/jobs", "/api/v1/prompt"]
OPENAI_PATHS = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/jobs"]


def _typed_body(fields: dict[str, Any], nest_in_job: bool, job_path: str) -> bytes:
    depths: dict[str, int] = {}
    body: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, Deep):
            depths[f"{DEEP_MARK}{key}"] = value
            body[key] = f"{DEEP_MARK}{key}"
        else:
            body[key] = value
    doc: Any = {"path": job_path, "body": body} if nest_in_job else body
    text = json.dumps(doc)
    for mark, depth in depths.items():
        text = text.replace(json.dumps(mark), "[" * depth + "]" * depth)
    return text.encode()


def _no_gateway_5xx(port: int, path: str, body: bytes) -> None:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN}"}
    answer = _send(port, "POST", path, headers, body)
    status = int(answer.split(b"\r\n", 1)[0].split()[1])
    assert status < 500, answer[:500]
    assert b"Traceback" not in answer


# A model the backend has most of the time, so that most bodies get past the model check
# into the code that walks them (payload log, tasks, jobs).
typed_fields = st.builds(
    lambda model, rest: {"model": model, **rest},
    st.one_of(st.just("llama3.2:latest"), FIELD_VALUES),
    st.dictionaries(st.sampled_from(FIELDS[1:]), FIELD_VALUES, max_size=4),
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(OLLAMA_PATHS), fields=typed_fields)
# Found before: a body the parser accepts but the payload log's walk cannot.
@example(path="/api/chat", fields={"model": "llama3.2:latest", "messages": Deep(1500)})
def test_wrong_types_and_deep_nesting_on_ollama_paths_get_no_5xx(
    payload_log_server: _Server, path: str, fields: dict[str, Any]
) -> None:
    body = _typed_body(fields, path == "/jobs", "/api/chat")
    _no_gateway_5xx(payload_log_server.port, path, body)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(path=st.sampled_from(OPENAI_PATHS), fields=typed_fields)
def test_wrong_types_and_deep_nesting_on_openai_paths_get_no_5xx(
    openai_server: _Server, path: str, fields: dict[str, Any]
) -> None:
    body = _typed_body(fields, path == "/jobs", "/v1/chat/completions")
    _no_gateway_5xx(openai_server.port, path, body)
