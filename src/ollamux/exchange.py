"""The Exchange: one object per request, carried through every hook.

It holds what the client asked for, what is being sent upstream, who asked, where it went
and how it ended. Plugins keep their own per-request data in ``state[<plugin name>]``.
"""

from __future__ import annotations

import enum
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from .dialect import Dialect

if TYPE_CHECKING:
    from .backend import Backend
    from .gateway import Gateway
    from .sink import Sink


@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key's name and what it may do."""

    name: str = "anonymous"
    admin: bool = False
    models: tuple[str, ...] = ()
    priority: int = 0
    authenticated: bool = False


ANONYMOUS = Principal()

# Where the core's identity middleware leaves the caller of every route on ``web.Request``.
PRINCIPAL_KEY: web.RequestKey[Principal] = web.RequestKey("ollamux_principal", Principal)


def principal_of(request: web.Request) -> Principal:
    """The caller of a route, as the ``ollamux_authenticate`` hook decided (anonymous when
    no plugin identified it)."""
    found = request.get(PRINCIPAL_KEY)
    return found if isinstance(found, Principal) else ANONYMOUS


class TaskState(enum.StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Outcome(enum.StrEnum):
    """How one attempt on one backend went; the balancer learns health from it."""

    OK = "ok"
    CLIENT_ERROR = "client_error"  # a 4xx: the request's fault, not the backend's
    BUSY = "busy"  # Ollama's 503 "server busy": try elsewhere, cool down briefly
    SERVER_ERROR = "server_error"  # 5xx
    CONNECT_ERROR = "connect_error"
    TIMEOUT = "timeout"
    STREAM_ERROR = "stream_error"  # broke after the first byte
    CANCELLED = "cancelled"  # the client went away


@dataclass
class UpstreamRequest:
    """What to send to a backend: path relative to the backend URL."""

    method: str
    path: str
    query: str = ""
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes | None = None


@dataclass
class LocalResponse:
    """An answer a plugin makes up instead of calling the backend (e.g. ``/api/version``
    for an OpenAI backend). It flows through response transforms like a real one."""

    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def json(cls, data: Any, status: int = 200) -> LocalResponse:
        return cls(status=status, body=json.dumps(data).encode())


@dataclass
class ResponseHead:
    """Status and headers of a backend's answer, before its body is relayed."""

    status: int
    headers: CIMultiDict[str]

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


@dataclass(eq=False)
class Exchange:
    """``request`` is the HTTP request for a live client, ``None`` for work dispatched
    in-process (``gateway.dispatch``); the answer always goes to ``sink``."""

    gateway: Gateway
    request: web.Request | None
    sink: Sink
    method: str
    path: str
    query: str
    headers: CIMultiDictProxy[str] | CIMultiDict[str]
    body: bytes
    dialect: Dialect
    json: dict[str, Any] | None = None
    model_requested: str | None = None
    model: str | None = None
    stream: bool = False
    principal: Principal = ANONYMOUS
    task_id: str = ""
    backend: Backend | None = None
    attempts: int = 0
    tried: set[str] = field(default_factory=set)
    state: dict[str, Any] = field(default_factory=dict)
    response_headers: dict[str, str] = field(default_factory=dict)
    started_at: float = field(default_factory=time.monotonic)
    created: float = field(default_factory=time.time)
    routed_at: float | None = None  # routing began (after rewriting)
    selected_at: float | None = None  # the first backend was chosen (the end of the wait)
    forwarded_at: float | None = None
    first_chunk_at: float | None = None
    finished_at: float | None = None
    chunks: int = 0
    bytes_out: int = 0
    status: int = 0
    outcome: TaskState = TaskState.PENDING
    error: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    # A transform of this attempt's answer (a translation) puts its token counts in
    # ``usage`` itself: no other need read them from the answer's bytes.
    counts_usage: bool = False
    stream_broken: bool = False  # the answer began, then broke (part of the outcome)
    body_changed: bool = False
    # Who cancelled the request (``DELETE /tasks/{id}``): set just before its task is
    # cancelled, so that the pipeline answers a live client with an error, not silence.
    cancelled_by: str = ""
    # While the request waits for a backend: its place in the wait queue (1 = next), as
    # the balancer knows it; ``None`` when it is not waiting.
    queue_position: Callable[[], int] | None = None

    @property
    def id(self) -> str:
        return self.task_id or f"req-{id(self):x}"

    def set_model(self, name: str) -> None:
        """Change the model sent upstream (the body is re-encoded when forwarded)."""
        self.model = name
        if self.json is not None:
            key = "model" if "model" in self.json or "name" not in self.json else "name"
            self.json[key] = name
            self.body_changed = True

    def upstream_body(self) -> bytes:
        if self.body_changed and self.json is not None:
            return json.dumps(self.json).encode()
        return self.body

    def elapsed_ms(self, since: float | None = None) -> int:
        return int(((self.finished_at or time.monotonic()) - (since or self.started_at)) * 1000)


# Random bytes for ids, taken from the OS 4 KB at a time: one ``getrandom`` call per 256
# ids instead of one per id (a syscall is a few us on a busy machine). A forked child
# starts with an empty pool, so that it never repeats its parent's ids.
_POOL_BYTES = 4096
_pool = bytearray()
_pool_lock = threading.Lock()


def _drop_pool() -> None:
    global _pool_lock, _id_bits
    _pool_lock = threading.Lock()  # another thread may have held it at the fork
    _pool.clear()
    _id_bits = iter(())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_drop_pool)


def random16() -> bytes:
    """16 random bytes from the OS (``os.urandom``'s quality), from the pool."""
    with _pool_lock:  # ids may be made in threads too: no two callers get the same bytes
        if len(_pool) < 16:
            _pool[:] = os.urandom(_POOL_BYTES)
        chunk = bytes(_pool[-16:])
        del _pool[-16:]
    return chunk


# The random bits of task ids: 80-bit numbers cut from 4 KB of the OS's randomness at a
# time. ``next`` on a list's iterator is atomic, so threads never share one, with no lock.
_ID_BYTES = 10
_id_bits: Iterator[int] = iter(())


def _more_id_bits() -> Iterator[int]:
    global _id_bits
    data = os.urandom(_POOL_BYTES)
    _id_bits = iter(
        [int.from_bytes(data[i : i + _ID_BYTES]) for i in range(0, _POOL_BYTES - 9, _ID_BYTES)]
    )
    return _id_bits


# Version 7 in bits 76-79, the RFC 4122 variant (binary 10) in bits 62-63.
_VERSION_AND_VARIANT = 0x7 << 76 | 0x2 << 62
_RAND_A = 0xFFF  # 12 random bits after the version
_RAND_B = (1 << 62) - 1  # 62 random bits after the variant


def new_task_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562: the Unix time in milliseconds, then 74
    random bits) as text, formatted directly.

    Ids made later sort later, so a store indexing tasks by id adds each new one at the
    end of its index instead of on a random page: SQLite's upsert of a finished request
    costs less than half as much (about 4 against 10 µs a row at 40 000 rows, and the
    random kind grows dearer as the table grows). The random bits keep ids unguessable."""
    try:
        bits = next(_id_bits)
    except StopIteration:
        bits = next(_more_id_bits())
    value = (
        (time.time_ns() // 1_000_000) << 80
        | _VERSION_AND_VARIANT
        | (bits >> 62 & _RAND_A) << 64
        | bits & _RAND_B
    )
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
