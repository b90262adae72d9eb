"""The lease a worker holds on its job, as seen from the worker's side.

The store keeps the lease (``lease_until`` in SQLite, the ``running`` set in Redis); the
worker renews it every ``renew_interval(lease_s)`` seconds. When the store cannot be
reached the worker cannot renew, and past a point it must assume the lease lapsed and
another process took the job: ``Leases.presumed_lost`` says when, so the worker drops its
request instead of running the job a second time beside its new claimer.
"""

from __future__ import annotations

import time

# Claims ended without an outcome (a job cancelled while it ran) are forgotten once there
# are more than this many, when their lease surely lapsed.
_PRUNE_ABOVE = 1000


def renew_interval(lease_s: float) -> float:
    """How often a running job's lease is renewed: ``min(lease_s / 3, 2)`` seconds."""
    return max(0.05, min(lease_s / 3, 2.0))


class Leases:
    """When each claim (by token) was last confirmed by the store."""

    def __init__(self, lease_s: float) -> None:
        self.lease_s = lease_s
        self._confirmed: dict[str, float] = {}

    def confirmed(self, token: str) -> None:
        """The store just granted or extended this claim's lease."""
        now = time.monotonic()
        self._confirmed[token] = now
        if len(self._confirmed) > _PRUNE_ABOVE:  # claims dropped without an outcome
            stale = now - 2 * self.lease_s
            self._confirmed = {t: at for t, at in self._confirmed.items() if at > stale}

    def ended(self, token: str) -> None:
        self._confirmed.pop(token, None)

    def age(self, token: str) -> float:
        """Seconds since the lease was last confirmed (infinite for an unknown claim)."""
        at = self._confirmed.get(token)
        return float("inf") if at is None else time.monotonic() - at

    def presumed_lost(self, token: str) -> bool:
        """Whether the lease may have lapsed by now: not confirmed for most of ``lease_s``
        (a margin of one renewal interval for clocks and the store's own delay)."""
        return self.age(token) >= self.lease_s - renew_interval(self.lease_s)

    def remaining(self, token: str) -> float:
        """Seconds left before the lease surely lapsed (0 when it has)."""
        return max(0.0, self.lease_s - self.age(token))
