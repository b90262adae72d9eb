"""A selection policy plugin: always the backend whose name sorts last."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from ollamux import hookimpl
from ollamux.backend import Backend
from ollamux.fleet import Choice, choose_with
from ollamux.gateway import Gateway


class LastByName:
    def choose(
        self,
        backends: Sequence[Backend],
        model: str | None,
        tried: AbstractSet[str],
        capped: bool,
        now: float,
    ) -> Choice:
        # choose_with keeps the rules (model served, not draining, not tried, healthy
        # first, room left) and hands over the candidates, in name order, to pick from.
        return choose_with(lambda candidates: candidates[-1], backends, model, tried, capped, now)


@hookimpl
def ollamux_selection_policy(gateway: Gateway) -> LastByName:
    return LastByName()
