"""Which models a key may use: its allow-list of globs."""

from __future__ import annotations

from fnmatch import fnmatchcase

from ...backend import with_latest
from ...exchange import Principal


def model_allowed(principal: Principal, model: str | None) -> bool:
    """Whether ``principal`` may use ``model`` (no allow-list: every model).

    A name without a tag is Ollama's ``:latest`` (``llama3.2`` is ``llama3.2:latest``), as
    the balancer routes it, so ``llama3.2:*`` allows it.
    """
    globs = principal.models
    if not globs:
        return True
    if model is None:
        return False
    names = (model, with_latest(model))
    return any(fnmatchcase(name, g) for name in names for g in globs)
