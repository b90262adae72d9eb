"""A test plugin that records the exchange of every finished request."""

from __future__ import annotations

import asyncio

from ollamux import hookimpl
from ollamux.exchange import Exchange


class Finished:
    """Test plugin: the exchange of each finished request, in order; ``event`` is set at
    every one."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.event = asyncio.Event()

    @hookimpl
    def ollamux_request_finished(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        self.event.set()

    async def last(self) -> Exchange:
        """The latest finished exchange, once there is one (10 s at most)."""
        await asyncio.wait_for(self.event.wait(), 10)
        return self.exchanges[-1]
