"""Prometheus metrics for one gateway, in a registry of its own (never the global one).

Request metrics are plain numbers updated from hooks as requests end, and exposed by
``RequestMetrics`` at scrape time (see ``series``). Live numbers (backends, queue depth,
whatever plugins publish in ``gateway.gauges`` and ``gateway.counters``) are read at scrape
time by ``GatewayCollector``, so nothing has to push them.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ...backend import with_latest
from ...endpoints import ENDPOINTS
from .series import Buckets, Count, CounterFamily, HistogramFamily

if TYPE_CHECKING:
    from ...exchange import Exchange
    from ...gateway import Gateway

# Seconds: LLM requests range from milliseconds (embeddings, listings) to many minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60)

# The paths clients use; anything else is counted as "other" so a scanner hitting random
# URLs cannot blow up the number of time series.
KNOWN_PATHS = frozenset({"/", *ENDPOINTS})
_PREFIXES = (("/v1/models/", "/v1/models/{model}"), ("/api/blobs/", "/api/blobs/{digest}"))
_NAME = re.compile(r"[^a-zA-Z0-9_]")


def endpoint_label(path: str) -> str:
    if path in KNOWN_PATHS:
        return path
    for prefix, label in _PREFIXES:
        if path.startswith(prefix):
            return label
    return "other"


def model_label(gateway: Gateway, model: str | None) -> str:
    """``model`` when a backend's catalog lists it (configured, or read from the backend),
    else ``other``: the label values are bounded by the fleet's catalog, not by clients.
    (``loaded_models`` is not enough: the balancer notes there whatever a backend with an
    unknown catalog just ran.)"""
    if not model:
        return ""
    backends = gateway.backends.values()
    for b in backends:
        if model in b.models:
            return model
    tagged = with_latest(model)  # only built when the name as given is listed nowhere
    for b in backends:
        if tagged in b.models:
            return model
    return "other"


def metric_name(name: str) -> str:
    """``queue_depth`` -> ``ollamux_queue_depth`` (anything not [a-zA-Z0-9_] becomes _)."""
    return "ollamux_" + _NAME.sub("_", name)


class _Series:
    """What one kind of request (endpoint, status, model, backend) updates: its own count,
    and the histograms and token counts it shares with other kinds."""

    __slots__ = ("duration", "requests", "tokens_in", "tokens_out", "ttft")

    def __init__(
        self, requests: Count, duration: Buckets, ttft: Buckets, tokens_in: Count, tokens_out: Count
    ) -> None:
        self.requests = requests
        self.duration = duration
        self.ttft = ttft
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out


# Bound on the cache of label combinations (unknown paths all map to "other").
_MAX_CACHED = 4096


class RequestMetrics(Collector):
    """The metrics updated per request, as plain numbers (see ``series``), and the
    collector that exposes them (with the requests in flight, read from ``in_flight``)."""

    def __init__(self, in_flight: Callable[[], float] = lambda: 0.0) -> None:
        self.in_flight = in_flight
        self._series: dict[tuple[str, int, str, str], _Series] = {}
        self.requests = CounterFamily(
            "ollamux_requests",
            "Requests finished, by endpoint, status, model and backend.",
            ["endpoint", "status", "model", "backend"],
        )
        self.duration = HistogramFamily(
            "ollamux_request_duration_seconds",
            "Time from the request's arrival to its end.",
            ["endpoint", "model"],
            LATENCY_BUCKETS,
        )
        self.ttft = HistogramFamily(
            "ollamux_time_to_first_chunk_seconds",
            "Time from the request's arrival to the first byte of the answer sent.",
            ["endpoint", "model"],
            TTFT_BUCKETS,
        )
        self.queue_wait = HistogramFamily(
            "ollamux_queue_wait_seconds",
            "Time a request waited for a backend to be chosen (a free slot).",
            [],
            WAIT_BUCKETS,
        )
        self._wait = self.queue_wait.child(())
        self.tokens = CounterFamily(
            "ollamux_tokens",
            "Tokens in (prompt) and out (completion), by model and backend.",
            ["direction", "model", "backend"],
        )

    def observe(self, exchange: Exchange, usage: dict[str, int], wait_s: float | None) -> None:
        backend = exchange.backend.name if exchange.backend is not None else ""
        # Only models that reached a backend and that some backend lists are labels: a
        # client cannot invent series (a backend whose catalog is unknown takes any name).
        model = model_label(exchange.gateway, exchange.model) if backend else ""
        end = exchange.finished_at or time.monotonic()
        first = exchange.first_chunk_at
        self.record(
            (endpoint_label(exchange.path), exchange.status, model, backend),
            max(0.0, end - exchange.started_at),
            None if first is None else max(0.0, first - exchange.started_at),
            wait_s,
            usage.get("prompt_tokens", 0),
            usage.get("completion_tokens", 0),
        )

    def record(
        self,
        key: tuple[str, int, str, str],
        duration_s: float,
        ttft_s: float | None,
        wait_s: float | None,
        tokens_in: int,
        tokens_out: int,
    ) -> None:
        """One finished request of the kind ``key`` (endpoint, status, model, backend)."""
        series = self._series.get(key)
        if series is None:
            series = self._children(*key)
        series.requests.value += 1
        # ``Buckets.observe`` inlined (three method calls less for every request).
        h = series.duration
        h.counts[bisect_left(h.bounds, duration_s)] += 1
        h.sum += duration_s
        if ttft_s is not None:
            h = series.ttft
            h.counts[bisect_left(h.bounds, ttft_s)] += 1
            h.sum += ttft_s
        if wait_s is not None:
            h = self._wait
            h.counts[bisect_left(h.bounds, wait_s)] += 1
            h.sum += wait_s
        if tokens_in > 0:
            series.tokens_in.value += tokens_in
        if tokens_out > 0:
            series.tokens_out.value += tokens_out

    def _children(self, endpoint: str, status: int, model: str, backend: str) -> _Series:
        """The series one kind of request updates, created (and so exposed, at zero) the
        first time that kind is seen; cached per kind."""
        if len(self._series) >= _MAX_CACHED:
            self._series.clear()
        series = self._series[(endpoint, status, model, backend)] = _Series(
            self.requests.child((endpoint, str(status), model, backend)),
            self.duration.child((endpoint, model)),
            self.ttft.child((endpoint, model)),
            self.tokens.child(("in", model, backend)),
            self.tokens.child(("out", model, backend)),
        )
        return series

    def collect(self) -> Iterator[Metric]:
        yield self.requests.metric()
        yield self.duration.metric()
        yield self.ttft.metric()
        yield GaugeMetricFamily(
            "ollamux_requests_in_flight",
            "Requests being handled now.",
            value=float(self.in_flight()),
        )
        yield self.queue_wait.metric()
        yield self.tokens.metric()


class GatewayCollector(Collector):
    """Reads backends, ``gateway.gauges`` and ``gateway.counters`` at scrape time."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        backends = list(self.gateway.backends.values())
        healthy = GaugeMetricFamily(
            "ollamux_backend_healthy", "1 when the backend is healthy.", labels=["backend"]
        )
        in_flight = GaugeMetricFamily(
            "ollamux_backend_in_flight", "Requests in flight on the backend.", labels=["backend"]
        )
        capacity = GaugeMetricFamily(
            "ollamux_backend_max_concurrency",
            "Requests the backend may run at once (this worker's share).",
            labels=["backend"],
        )
        loaded = GaugeMetricFamily(
            "ollamux_backend_loaded_models", "Models loaded on the backend.", labels=["backend"]
        )
        for b in backends:
            healthy.add_metric([b.name], 1.0 if b.healthy and not b.draining else 0.0)
            in_flight.add_metric([b.name], b.in_flight)
            capacity.add_metric([b.name], b.max_concurrency)
            loaded.add_metric([b.name], len(b.loaded_models))
        yield from (healthy, in_flight, capacity, loaded)
        for name, read in sorted(self.gateway.gauges.items()):
            try:
                value = float(read())
            except Exception:  # a broken gauge must not break the scrape
                continue
            family: Metric
            if name.endswith("_total"):  # a running count: export it as a counter
                family = CounterMetricFamily(
                    metric_name(name[: -len("_total")]), f"Count {name!r} published by a plugin."
                )
            else:
                family = GaugeMetricFamily(
                    metric_name(name), f"Gauge {name!r} published by a plugin."
                )
            family.add_metric([], value)
            yield family
        for name, count in sorted(self.gateway.counters.items()):
            cfamily = CounterMetricFamily(
                metric_name(name), f"Counter {name!r} incremented by a plugin."
            )
            cfamily.add_metric([], float(count))
            yield cfamily


def build_registry(
    gateway: Gateway, in_flight: Callable[[], float] = lambda: 0.0
) -> tuple[CollectorRegistry, RequestMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    metrics = RequestMetrics(in_flight)
    registry.register(metrics)
    registry.register(GatewayCollector(gateway))
    return registry, metrics
