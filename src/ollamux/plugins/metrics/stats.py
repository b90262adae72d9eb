"""Recent numbers for the dashboard: per-second buckets over the last few minutes and the
requests in flight right now. Cheap to update per request, cheap to read every second."""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ...exchange import Exchange
    from ...gateway import Gateway

WINDOW_S = 300


@dataclass
class Bucket:
    second: int
    requests: int = 0
    errors: int = 0
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    ttft_n: int = 0
    tokens_out: int = 0


class RecentStats:
    def __init__(self) -> None:
        self.buckets: deque[Bucket] = deque()
        self.live: dict[int, Exchange] = {}
        self.total = 0
        self.started = time.time()

    def begin(self, exchange: Exchange) -> None:
        self.live[id(exchange)] = exchange

    def end(self, exchange: Exchange, usage: dict[str, int]) -> None:
        self.live.pop(id(exchange), None)
        self.total += 1
        second = int(time.time())
        buckets = self.buckets
        # The current second's bucket, nearly always there already (no call to find it).
        b = buckets[-1] if buckets and buckets[-1].second == second else self._bucket(second)
        b.requests += 1
        if exchange.status >= 400 or exchange.outcome == "FAILED":
            b.errors += 1
        b.latency_ms += exchange.elapsed_ms()
        if exchange.first_chunk_at is not None:
            b.ttft_ms += (exchange.first_chunk_at - exchange.started_at) * 1000
            b.ttft_n += 1
        if usage:
            b.tokens_out += usage.get("completion_tokens", 0)

    def _bucket(self, second: int) -> Bucket:
        if not self.buckets or self.buckets[-1].second != second:
            self.buckets.append(Bucket(second))
            while self.buckets and self.buckets[0].second <= second - WINDOW_S:
                self.buckets.popleft()
        return self.buckets[-1]

    def series(self, seconds: int = 120) -> list[dict[str, Any]]:
        """One point per second (zeros included) for the last ``seconds`` seconds."""
        now = int(time.time())
        by_second = {b.second: b for b in self.buckets}
        out = []
        for s in range(now - seconds + 1, now + 1):
            b = by_second.get(s)
            n = b.requests if b else 0
            out.append(
                {
                    "t": s,
                    "requests": n,
                    "errors": b.errors if b else 0,
                    "latency_ms": round(b.latency_ms / n, 1) if b and n else None,
                    "ttft_ms": round(b.ttft_ms / b.ttft_n, 1) if b and b.ttft_n else None,
                    "tokens_out": b.tokens_out if b else 0,
                }
            )
        return out

    def snapshot(self, gateway: Gateway) -> dict[str, Any]:
        """The ``/ollamux/stats`` document."""
        gauges: dict[str, float] = {}
        for name, read in gateway.gauges.items():
            try:
                gauges[name] = float(read())
            except Exception:
                continue
        now = time.monotonic()
        tasks = sorted(self.live.values(), key=lambda e: e.started_at)
        return {
            "time": time.time(),
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "requests_total": self.total,
            "in_flight": len(self.live),
            "queue_depth": gauges.get("queue_depth", 0.0),
            "gauges": gauges,
            "counters": dict(gateway.counters),
            "backends": [b.describe() for b in gateway.backends.values()],
            "tasks": [_live_task(e, now) for e in tasks[:100]],
            "series": self.series(),
        }


def _live_task(e: Exchange, now: float) -> dict[str, Any]:
    return {
        "task_id": e.task_id,
        "key": e.principal.name,
        "method": e.method,
        "path": e.path,
        "model": e.model,
        "backend": e.backend.name if e.backend is not None else None,
        "state": "RUNNING" if e.forwarded_at is not None else "PENDING",
        "stream": e.stream,
        "chunks": e.chunks,
        "elapsed_ms": int((now - e.started_at) * 1000),
    }
