"""The fleet's shared picture, and the contract of a selection policy.

Several built-in plugins work on the same backends: ``health`` probes them and discovers
new ones, ``balancer`` hands out slots and keeps the wait queue, ``selection`` ranks them,
``fleet_admin`` shows and drains them. None of them imports another; what they share lives
here (and in ``gateway.backends`` and the fields of ``Backend``), and what happens to it is
announced with the ``ollamux_backend_changed`` / ``ollamux_fleet_changed`` events.

A **selection policy** is the object ``ollamux_selection_policy`` returns once at start
(and after a config reload). Its ``choose()`` runs on every attempt and whenever the wait
queue looks for a backend for a waiter, so it is a plain method: no awaits, no hooks.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .backend import Backend

if TYPE_CHECKING:
    from .gateway import Gateway


class Verdict(enum.Enum):
    """What a policy's ``choose()`` concluded."""

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


class SelectionPolicy(Protocol):
    """Ranks backends for one attempt. Returned by ``ollamux_selection_policy``."""

    def choose(
        self,
        backends: Sequence[Backend],
        model: str | None,
        tried: AbstractSet[str],
        capped: bool,
        now: float,
    ) -> Choice:
        """The backend for ``model`` right now, or why there is none.

        ``backends``: every backend of the fleet, in name order (draining, unhealthy and
        full ones included). ``tried``: names already tried for this request, never to be
        picked again. ``capped``: whether ``max_concurrency`` and busy cool-downs apply
        (a request that runs a model); a backend is full when ``in_flight >=
        max_concurrency`` or ``busy_until > now`` (``now`` is ``time.monotonic()``).
        Must not await, block or change the backends: the caller takes the slot.
        ``choose_with`` applies those rules and leaves only the preference to you.
        """
        ...


def choose_with(
    prefer: Callable[[Sequence[Backend]], Backend],
    backends: Sequence[Backend],
    model: str | None,
    tried: AbstractSet[str],
    capped: bool,
    now: float,
) -> Choice:
    """A policy's building block: the rules every policy must keep, and the verdicts.

    The candidates are the backends that serve ``model``, are not draining and were not
    tried; the healthy ones among them (all of them when none is healthy); and, when
    ``capped``, only those with room. ``prefer`` gets that non-empty list (in name order)
    and returns one of it.
    """
    serving = [b for b in backends if b.serves(model)]
    if not serving:
        return Choice(Verdict.UNKNOWN_MODEL if backends else Verdict.NO_BACKENDS)
    untried = [b for b in serving if b.name not in tried]
    live = [b for b in untried if not b.draining]
    if not live:
        return Choice(Verdict.EXHAUSTED if len(untried) < len(serving) else Verdict.DRAINING)
    live = [b for b in live if b.healthy] or live
    if capped:
        live = [b for b in live if b.in_flight < b.max_concurrency and b.busy_until <= now]
    if not live:
        return Choice(Verdict.FULL)
    return Choice(Verdict.PICKED, prefer(live))


class FleetState:
    """Per-gateway state the fleet's owners share (``fleet_of(gateway)``)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # Until discovery's first scan ends, an unknown model may still turn up: wait. The
        # plugin that discovers backends (``health``) says when it has a scan to make.
        self.discovery_ready = True
        self._ordered: list[Backend] = []
        self._stale = True

    def ordered(self) -> list[Backend]:
        """The backends in name order (what a policy's ``choose`` gets), cached; rebuilt
        when the fleet changes size or after ``backends_changed``."""
        if self._stale or len(self._ordered) != len(self.gateway.backends):
            self._ordered = sorted(self.gateway.backends.values(), key=lambda b: b.name)
            self._stale = False
        return self._ordered

    def backends_changed(self) -> None:
        """``gateway.backends`` gained, lost or replaced entries: rebuild the order."""
        self._stale = True


def fleet_of(gateway: Gateway) -> FleetState:
    """The gateway's shared fleet state, created on first use."""
    return gateway.state_of(FleetState)
