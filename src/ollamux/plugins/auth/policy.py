"""Who may call what: the rules, kept apart from the mechanics of finding the caller."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ...backend import with_latest
from ...exchange import Principal

# Open to anyone, even with keys configured: load balancers and orchestrators probe it.
PUBLIC = frozenset({("GET", "/ollamux/health"), ("HEAD", "/ollamux/health")})

_ADMIN_PREFIXES = ("/ollamux/", "/__proxy/")
_ADMIN_PATHS = frozenset({"/ollamux", "/__proxy", "/metrics"})
# Ollama endpoints that change what a backend stores: not for ordinary keys.
_MANAGEMENT_PATHS = frozenset({"/api/pull", "/api/push", "/api/create", "/api/delete", "/api/copy"})


def is_public(method: str, path: str) -> bool:
    return (method, path) in PUBLIC


def needs_admin(path: str) -> bool:
    """Admin endpoints, and Ollama's model management (pull, push, create, delete, copy)."""
    return (
        path in _ADMIN_PATHS
        or path.startswith(_ADMIN_PREFIXES)
        or path in _MANAGEMENT_PATHS
        or path.startswith("/api/blobs/")
    )


def model_allowed(principal: Principal, model: str | None, suffix: str = "") -> bool:
    """Whether ``principal`` may use ``model`` (no allow-list: every model).

    A listed name may carry the configured display suffix (``models.suffix``); the name
    without it is checked too. A name without a tag is Ollama's ``:latest`` (``llama3.2``
    is ``llama3.2:latest``), as the balancer routes it, so ``llama3.2:*`` allows it.
    """
    globs = principal.models
    if not globs:
        return True
    if model is None:
        return False
    bare = [model, model[: -len(suffix)]] if suffix and model.endswith(suffix) else [model]
    names = bare + [with_latest(name) for name in bare]
    return any(fnmatchcase(name, g) for name in names for g in globs)
