"""Prometheus metrics for one gateway, in a registry of its own (never the global one).

Request metrics are updated from hooks as requests end. Live numbers (backends, queue depth,
whatever plugins publish in ``gateway.gauges`` and ``gateway.counters``) are read at scrape
time by ``GatewayCollector``, so nothing has to push them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ...backend import with_latest
from ...endpoints import ENDPOINTS

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
    tagged = with_latest(model)
    for b in gateway.backends.values():
        if model in b.models or tagged in b.models:
            return model
    return "other"


def metric_name(name: str) -> str:
    """``queue_depth`` -> ``ollamux_queue_depth`` (anything not [a-zA-Z0-9_] becomes _)."""
    return "ollamux_" + _NAME.sub("_", name)


# (requests, duration, ttft, tokens in, tokens out) for one label combination.
_Series = tuple[Any, Any, Any, Any, Any]
# Bound on the cache of label combinations (unknown paths all map to "other").
_MAX_CACHED = 4096


class RequestMetrics:
    """The metrics updated per request, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._series: dict[tuple[str, int, str, str], _Series] = {}
        self.requests = Counter(
            "ollamux_requests",
            "Requests finished, by endpoint, status, model and backend.",
            ["endpoint", "status", "model", "backend"],
            registry=registry,
        )
        self.duration = Histogram(
            "ollamux_request_duration_seconds",
            "Time from the request's arrival to its end.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "ollamux_time_to_first_chunk_seconds",
            "Time from the request's arrival to the first byte of the answer sent.",
            ["endpoint", "model"],
            buckets=TTFT_BUCKETS,
            registry=registry,
        )
        self.in_flight = Gauge(
            "ollamux_requests_in_flight", "Requests being handled now.", registry=registry
        )
        self.queue_wait = Histogram(
            "ollamux_queue_wait_seconds",
            "Time a request waited for a backend to be chosen (a free slot).",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "ollamux_tokens",
            "Tokens in (prompt) and out (completion), by model and backend.",
            ["direction", "model", "backend"],
            registry=registry,
        )

    def observe(self, exchange: Exchange, usage: dict[str, int], wait_s: float | None) -> None:
        backend = exchange.backend.name if exchange.backend is not None else ""
        # Only models that reached a backend and that some backend lists are labels: a
        # client cannot invent series (a backend whose catalog is unknown takes any name).
        model = model_label(exchange.gateway, exchange.model) if backend else ""
        key = (endpoint_label(exchange.path), exchange.status, model, backend)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self._children(*key)
        requests, duration, ttft, tokens_in, tokens_out = series
        requests.inc()
        end = exchange.finished_at or time.monotonic()
        duration.observe(max(0.0, end - exchange.started_at))
        if exchange.first_chunk_at is not None:
            ttft.observe(max(0.0, exchange.first_chunk_at - exchange.started_at))
        if wait_s is not None:
            self.queue_wait.observe(wait_s)
        if usage.get("prompt_tokens"):
            tokens_in.inc(usage["prompt_tokens"])
        if usage.get("completion_tokens"):
            tokens_out.inc(usage["completion_tokens"])

    def _children(self, endpoint: str, status: int, model: str, backend: str) -> _Series:
        """The labelled series one kind of request updates (looked up once, then cached:
        ``labels()`` takes a lock and builds a tuple on every call)."""
        if len(self._series) >= _MAX_CACHED:
            self._series.clear()
        return (
            self.requests.labels(endpoint, str(status), model, backend),
            self.duration.labels(endpoint, model),
            self.ttft.labels(endpoint, model),
            self.tokens.labels("in", model, backend),
            self.tokens.labels("out", model, backend),
        )


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


def build_registry(gateway: Gateway) -> tuple[CollectorRegistry, RequestMetrics]:
    registry = CollectorRegistry(auto_describe=False)
    metrics = RequestMetrics(registry)
    registry.register(GatewayCollector(gateway))
    return registry, metrics
