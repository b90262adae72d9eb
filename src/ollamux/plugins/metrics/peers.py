"""``/metrics`` for every worker at once (``--workers N``).

A scrape reaches whichever worker the kernel picks, so each worker also serves its own
numbers on a unix socket in the supervisor's private directory (mode 0700, nothing on the
network). The worker answering a scrape reads its peers' numbers there and returns all of
them, every sample labelled ``worker="<index>"``. A peer that does not answer within a
second (restarting, stopping) is left out of that scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Iterator

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from ...workers import WorkerSlot

PEER_TIMEOUT_S = 1.0


class PeerMetrics:
    """This worker's socket for its peers, and the merged exposition for a scrape."""

    def __init__(self, slot: WorkerSlot, registry: CollectorRegistry) -> None:
        self.slot = slot
        self.registry = registry
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._local)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        path = self.slot.socket_path(self.slot.index)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # left by a worker that died in this slot
        await web.UnixSite(self._runner, path).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _local(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.registry), content_type="text/plain")

    async def exposition(self) -> bytes:
        texts = {self.slot.index: generate_latest(self.registry).decode()}
        peers = [i for i in range(self.slot.count) if i != self.slot.index]
        found = await asyncio.gather(*(self._fetch(i) for i in peers))
        texts.update({i: text for i, text in zip(peers, found, strict=True) if text})
        return merge(texts)

    async def _fetch(self, index: int) -> str:
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT_S)
        connector = aiohttp.UnixConnector(path=self.slot.socket_path(index))
        try:
            async with (
                aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
                session.get("http://worker/metrics") as resp,
            ):
                return await resp.text() if resp.status == 200 else ""
        except (aiohttp.ClientError, TimeoutError, OSError):
            return ""


def merge(texts: dict[int, str]) -> bytes:
    """Several workers' expositions as one, each sample labelled with its worker."""
    families: dict[str, Metric] = {}
    for index, text in sorted(texts.items()):
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = Metric(family.name, family.documentation, family.type)
                families[family.name] = merged
            for s in family.samples:
                merged.samples.append(s._replace(labels={**s.labels, "worker": str(index)}))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families.values()))
    return bytes(generate_latest(registry))


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
