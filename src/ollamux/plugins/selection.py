"""The ``selection`` built-in plugin: the default selection policy.

It answers ``ollamux_selection_policy`` last (``trylast``), so a plugin that returns a
policy of its own wins without disabling anything; the ``balancer`` calls the policy's
``choose()`` on every attempt and for every waiter it looks at (docs/routing.md).

``choose`` is one pass over the backends, no awaits, no allocation per backend (it runs on
every request). The backends come in name order, so a first quick pass can stop at the
first healthy, idle backend that has the model loaded: nothing can beat it. Only when there
is none does the full pass weigh every backend.

Order of preference among the backends that serve the model, are not draining and were not
tried yet for this request: healthy before unhealthy (unhealthy ones only when no healthy
one serves the model), then the model already loaded, then fewest requests in flight, then
(for a backend that must load the model) fewest models in memory, then the name (a stable
tie-break). A backend counts as full when it has ``max_concurrency``
requests in flight or is cooling down after answering "busy".
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from ..backend import Backend, with_latest
from ..dialect import Dialect
from ..fleet import Choice, SelectionPolicy, Verdict
from ..gateway import Gateway
from ..hookspecs import hookimpl


def choose(
    backends: Sequence[Backend],
    model: str | None,
    tried: AbstractSet[str],
    capped: bool,
    now: float,
) -> Choice:
    """The best backend for ``model`` right now, or why there is none.

    ``backends`` must be in name order (the tie-break). ``capped``: whether
    ``max_concurrency`` and busy cool-downs apply (they do for requests that run a model;
    listings and metadata requests go through regardless).
    """
    alt = with_latest(model) if model is not None else None
    ideal = _first_ideal(backends, model, alt, tried, now)
    if ideal is not None:
        return Choice(Verdict.PICKED, ideal)
    any_backend = serving = any_tried = untried = healthy_candidate = False
    best: Backend | None = None
    best_key: tuple[int, int, int, str] = (0, 0, 0, "")
    fallback: Backend | None = None
    fb_key: tuple[int, int, int, str] = (0, 0, 0, "")
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
        loaded = b.loaded_models
        if model is None or b.api is Dialect.OPENAI or model in loaded or alt in loaded:
            key = (0, flight, 0, b.name)
        else:
            # A model load: on the least busy backend, then the one holding fewest models
            # (the least likely to evict something another request is about to want).
            key = (1, flight, len(loaded), b.name)
        if healthy:
            if best is None or key < best_key:
                best, best_key = b, key
        elif fallback is None or key < fb_key:
            fallback, fb_key = b, key
    if not serving:
        return Choice(Verdict.UNKNOWN_MODEL if any_backend else Verdict.NO_BACKENDS)
    if not untried:
        return Choice(Verdict.EXHAUSTED if any_tried else Verdict.DRAINING)
    pick = best if healthy_candidate else fallback
    if pick is None:
        return Choice(Verdict.FULL)
    return Choice(Verdict.PICKED, pick)


def _first_ideal(
    backends: Sequence[Backend],
    model: str | None,
    alt: str | None,
    tried: AbstractSet[str],
    now: float,
) -> Backend | None:
    """The first backend (in name order) with the best possible key: healthy, idle, not
    cooling down, serving the model with it loaded. Checks the cheapest things first."""
    for b in backends:
        if b.in_flight or not b.healthy or b.draining or b.busy_until > now:
            continue
        if model is not None:
            catalog = b.models
            if catalog and model not in catalog and alt not in catalog:
                continue
            if b.api is not Dialect.OPENAI:
                loaded = b.loaded_models
                if model not in loaded and alt not in loaded:
                    continue
        if tried and b.name in tried:
            continue
        return b
    return None


class LoadedFirst:
    """The built-in policy: loaded model, then least in flight, then fewest models loaded,
    then name. ``choose`` is the module's function itself (no wrapper call per request)."""

    name = "loaded-first"
    choose = staticmethod(choose)


POLICY = LoadedFirst()


@hookimpl(trylast=True)
def ollamux_selection_policy(gateway: Gateway) -> SelectionPolicy:
    return POLICY
