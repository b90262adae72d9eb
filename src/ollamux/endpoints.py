"""The one registry of the API endpoints ollamux knows by path, and what each one is.

Every module that needs to know whether a path runs a model, streams by default, lists the
fleet or changes what a backend stores asks here, instead of keeping a table of its own.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .dialect import Dialect


class Kind(enum.Enum):
    INFERENCE = "inference"  # runs a model: chat, generate, embeddings
    LISTING = "listing"  # the fleet's models, merged from every backend
    METADATA = "metadata"  # about a model or the server, no generation (show, version)
    MANAGEMENT = "management"  # changes what a backend stores (pull, delete, ...)


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    kind: Kind
    dialect: Dialect
    needs_model: bool = False
    streams_by_default: bool = False
    # Inference: the body field that carries the input (what a job must give besides model).
    input_field: str = ""
    # Listings: the key of the list in the answer, and the key naming each entry.
    list_key: str = ""
    name_key: str = ""


def _ollama(path: str, kind: Kind, **kw: object) -> Endpoint:
    return Endpoint(path, kind, Dialect.OLLAMA, **kw)  # type: ignore[arg-type]


def _openai(path: str, kind: Kind, **kw: object) -> Endpoint:
    return Endpoint(path, kind, Dialect.OPENAI, **kw)  # type: ignore[arg-type]


def _anthropic(path: str, kind: Kind, **kw: object) -> Endpoint:
    return Endpoint(path, kind, Dialect.ANTHROPIC, **kw)  # type: ignore[arg-type]


ENDPOINTS: dict[str, Endpoint] = {
    e.path: e
    for e in (
        _ollama(
            "/api/chat",
            Kind.INFERENCE,
            needs_model=True,
            streams_by_default=True,
            input_field="messages",
        ),
        _ollama(
            "/api/generate",
            Kind.INFERENCE,
            needs_model=True,
            streams_by_default=True,
            input_field="prompt",
        ),
        _ollama("/api/embed", Kind.INFERENCE, needs_model=True, input_field="input"),
        _ollama("/api/embeddings", Kind.INFERENCE, needs_model=True),
        _ollama("/api/show", Kind.METADATA, needs_model=True),
        _ollama("/api/version", Kind.METADATA),
        _ollama("/api/tags", Kind.LISTING, list_key="models", name_key="name"),
        _ollama("/api/ps", Kind.LISTING, list_key="models", name_key="name"),
        _ollama("/api/pull", Kind.MANAGEMENT, streams_by_default=True),
        _ollama("/api/push", Kind.MANAGEMENT, streams_by_default=True),
        _ollama("/api/create", Kind.MANAGEMENT, streams_by_default=True),
        _ollama("/api/delete", Kind.MANAGEMENT),
        _ollama("/api/copy", Kind.MANAGEMENT),
        _openai("/v1/chat/completions", Kind.INFERENCE, needs_model=True, input_field="messages"),
        _openai("/v1/completions", Kind.INFERENCE, needs_model=True, input_field="prompt"),
        _openai("/v1/embeddings", Kind.INFERENCE, needs_model=True, input_field="input"),
        _openai("/v1/responses", Kind.INFERENCE, needs_model=True, input_field="input"),
        _anthropic("/v1/messages", Kind.INFERENCE, needs_model=True, input_field="messages"),
        _anthropic("/v1/messages/count_tokens", Kind.METADATA, needs_model=True),
        _openai("/v1/models", Kind.LISTING, list_key="data", name_key="id"),
    )
}

# Blob uploads (``/api/blobs/<digest>``): binary bodies, model management.
BLOBS_PREFIX = "/api/blobs/"


def endpoint(path: str) -> Endpoint | None:
    return ENDPOINTS.get(path)


# Asked on every request: sets made once (an enum member looked up on its class is slow on
# Python 3.11).
_MANAGEMENT_PATHS = frozenset(p for p, e in ENDPOINTS.items() if e.kind is Kind.MANAGEMENT)
_LISTINGS = {p: e for p, e in ENDPOINTS.items() if e.kind is Kind.LISTING}


def is_management(path: str) -> bool:
    """Whether ``path`` changes what a backend stores (pull, push, create, delete, copy,
    blobs): an admin matter, sent to one named backend or to all."""
    return path in _MANAGEMENT_PATHS or path.startswith(BLOBS_PREFIX)


def listing(method: str, path: str) -> Endpoint | None:
    """The listing endpoint ``GET path`` is, if it is one."""
    return _LISTINGS.get(path) if method == "GET" else None


INFERENCE_PATHS = frozenset(p for p, e in ENDPOINTS.items() if e.kind is Kind.INFERENCE)
