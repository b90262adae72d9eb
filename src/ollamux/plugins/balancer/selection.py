"""Choosing a backend for one request: one pass over the backends, no awaits, no allocation
per backend beyond a few comparisons (it runs on every request).

Order of preference among the backends that serve the model, are not draining and were not
tried yet for this request: healthy before unhealthy (unhealthy ones only when no healthy
one serves the model), then the model already loaded, then fewest requests in flight, then
the name (a stable tie-break). A backend counts as full when it has ``max_concurrency``
requests in flight or is cooling down after answering "busy".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from ...backend import Backend
from ...dialect import Dialect


class Verdict(enum.Enum):
    PICKED = "picked"  # ``Choice.backend`` is the one to use
    FULL = "full"  # candidates exist, but none has room right now: wait
    EXHAUSTED = "exhausted"  # every candidate was already tried for this request
    DRAINING = "draining"  # every backend serving the model is draining
    UNKNOWN_MODEL = "unknown_model"  # no backend serves the model
    NO_BACKENDS = "no_backends"  # the fleet is empty


@dataclass(slots=True)
class Choice:
    verdict: Verdict
    backend: Backend | None = None


def with_latest(model: str) -> str:
    """Ollama's implicit tag: ``llama3.2`` is ``llama3.2:latest``."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def is_loaded(backend: Backend, model: str | None) -> bool:
    """Whether serving ``model`` on ``backend`` needs no model load. OpenAI-compatible
    servers keep their models resident, so they always count as loaded."""
    if model is None or backend.api is Dialect.OPENAI:
        return True
    loaded = backend.loaded_models
    return model in loaded or with_latest(model) in loaded


def choose(
    backends: Iterable[Backend],
    model: str | None,
    tried: set[str],
    capped: bool,
    now: float,
) -> Choice:
    """The best backend for ``model`` right now, or why there is none.

    ``capped``: whether ``max_concurrency`` and busy cool-downs apply (they do for requests
    that run a model; listings and metadata requests go through regardless).
    """
    alt = with_latest(model) if model is not None else None
    any_backend = serving = any_tried = untried = healthy_candidate = False
    best: Backend | None = None
    best_cold = best_flight = 0
    fallback: Backend | None = None
    fb_cold = fb_flight = 0
    for b in backends:
        any_backend = True
        if model is not None:
            catalog = b.models
            if catalog and model not in catalog and alt not in catalog:
                continue
        serving = True
        if b.name in tried:
            any_tried = True
            continue
        if b.draining:
            continue
        untried = True
        healthy = b.healthy
        if healthy:
            healthy_candidate = True
        elif healthy_candidate:
            continue
        flight = b.in_flight
        if capped and (flight >= b.max_concurrency or b.busy_until > now):
            continue
        if model is None or b.api is Dialect.OPENAI:
            cold = 0
        else:
            loaded = b.loaded_models
            cold = 0 if (model in loaded or alt in loaded) else 1
        if healthy:
            if (
                best is None
                or cold < best_cold
                or (
                    cold == best_cold
                    and (flight < best_flight or (flight == best_flight and b.name < best.name))
                )
            ):
                best, best_cold, best_flight = b, cold, flight
        elif (
            fallback is None
            or cold < fb_cold
            or (
                cold == fb_cold
                and (flight < fb_flight or (flight == fb_flight and b.name < fallback.name))
            )
        ):
            fallback, fb_cold, fb_flight = b, cold, flight
    if not serving:
        return Choice(Verdict.UNKNOWN_MODEL if any_backend else Verdict.NO_BACKENDS)
    if not untried:
        return Choice(Verdict.EXHAUSTED if any_tried else Verdict.DRAINING)
    pick = best if healthy_candidate else fallback
    if pick is None:
        return Choice(Verdict.FULL)
    return Choice(Verdict.PICKED, pick)
