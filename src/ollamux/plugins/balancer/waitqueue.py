"""The admission queue: requests waiting for a free backend, highest priority first and
first-come first-served within a priority.

The queue only orders waiters; the fleet decides who can be served (``Fleet.dispatch``)
and hands a backend over by resolving the waiter's future.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ...backend import Backend
from ...exchange import Exchange


@dataclass(eq=False)
class Waiter:
    priority: int
    seq: int
    exchange: Exchange
    future: asyncio.Future[Backend | None]
    since: float = field(default_factory=time.monotonic)

    @property
    def order(self) -> tuple[int, int]:
        return (-self.priority, self.seq)


class WaitQueue:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._waiters: list[Waiter] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._waiters)

    def __iter__(self) -> Iterator[Waiter]:
        """A snapshot, so waiters may be removed while iterating."""
        return iter(list(self._waiters))

    @property
    def full(self) -> bool:
        return len(self._waiters) >= self.limit

    def add(self, exchange: Exchange) -> Waiter:
        waiter = Waiter(
            priority=exchange.principal.priority,
            seq=next(self._seq),
            exchange=exchange,
            future=asyncio.get_running_loop().create_future(),
        )
        bisect.insort(self._waiters, waiter, key=lambda w: w.order)
        return waiter

    def remove(self, waiter: Waiter) -> None:
        i = bisect.bisect_left(self._waiters, waiter.order, key=lambda w: w.order)
        if i < len(self._waiters) and self._waiters[i] is waiter:
            del self._waiters[i]

    def position(self, waiter: Waiter) -> int:
        """``waiter``'s place in the queue (1 = served next), 0 once it left."""
        i = bisect.bisect_left(self._waiters, waiter.order, key=lambda w: w.order)
        if i < len(self._waiters) and self._waiters[i] is waiter:
            return i + 1
        return 0

    def oldest_wait_s(self) -> float:
        if not self._waiters:
            return 0.0
        return time.monotonic() - min(w.since for w in self._waiters)
