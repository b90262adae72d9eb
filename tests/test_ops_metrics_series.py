"""Request metrics kept as plain numbers: exposed exactly as prometheus_client's own metrics
would expose them, exact under many requests, consistent whenever scraped."""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    enable_created_metrics,
    generate_latest,
)
from prometheus_client.parser import text_string_to_metric_families

from ollamux.plugins.metrics.prom import (
    LATENCY_BUCKETS,
    TTFT_BUCKETS,
    WAIT_BUCKETS,
    RequestMetrics,
)
from ollamux.plugins.metrics.series import HistogramFamily

MODEL = "llama3.2:latest"
_CREATED = re.compile(rb"^(\S+_created(?:\{[^}]*\})?) \S+$", re.M)


class Reference:
    """The request metrics as prometheus_client's ``Counter`` / ``Histogram`` / ``Gauge``
    define them: what ``/metrics`` exposes, sample for sample."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.requests = Counter(
            "ollamux_requests",
            "Requests finished, by endpoint, status, model and backend.",
            ["endpoint", "status", "model", "backend"],
            registry=r,
        )
        self.duration = Histogram(
            "ollamux_request_duration_seconds",
            "Time from the request's arrival to its end.",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "ollamux_time_to_first_chunk_seconds",
            "Time from the request's arrival to the first byte of the answer sent.",
            ["endpoint", "model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        Gauge("ollamux_requests_in_flight", "Requests being handled now.", registry=r).set(3)
        self.queue_wait = Histogram(
            "ollamux_queue_wait_seconds",
            "Time a request waited for a backend to be chosen (a free slot).",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "ollamux_tokens",
            "Tokens in (prompt) and out (completion), by model and backend.",
            ["direction", "model", "backend"],
            registry=r,
        )

    def record(
        self,
        key: tuple[str, int, str, str],
        duration: float,
        ttft: float | None,
        wait: float | None,
        tokens_in: int,
        tokens_out: int,
    ) -> None:
        endpoint, status, model, backend = key
        self.requests.labels(endpoint, str(status), model, backend).inc()
        self.duration.labels(endpoint, model).observe(duration)
        ttft_child = self.ttft.labels(endpoint, model)
        if ttft is not None:
            ttft_child.observe(ttft)
        if wait is not None:
            self.queue_wait.observe(wait)
        self.tokens.labels("in", model, backend).inc(tokens_in)
        self.tokens.labels("out", model, backend).inc(tokens_out)


def both() -> tuple[RequestMetrics, CollectorRegistry, Reference]:
    metrics = RequestMetrics(in_flight=lambda: 3)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics)
    return metrics, registry, Reference()


def random_requests(n: int, seed: int = 7) -> list[tuple[Any, ...]]:
    """Requests of a few kinds, with latencies that often fall exactly on a bucket bound."""
    rng = random.Random(seed)
    bounds = [*LATENCY_BUCKETS, *TTFT_BUCKETS, *WAIT_BUCKETS]
    kinds = [
        (endpoint, status, model, backend)
        for endpoint in ("/api/chat", "/v1/embeddings")
        for status in (200, 404)
        for model in (MODEL, "other")
        for backend in ("gpu1", "gpu2")
    ]

    def seconds() -> float:
        return float(rng.choice(bounds)) if rng.random() < 0.3 else rng.expovariate(0.5)

    return [
        (
            rng.choice(kinds),
            seconds(),
            seconds() if rng.random() < 0.8 else None,
            seconds() if rng.random() < 0.9 else None,
            rng.choice((0, 0, 7, 300)),
            rng.choice((0, 4, 1000)),
        )
        for _ in range(n)
    ]


def without_created_values(text: bytes) -> bytes:
    return _CREATED.sub(rb"\1 <created>", text)


def test_the_exposition_is_what_prometheus_clients_own_metrics_would_give() -> None:
    metrics, registry, reference = both()
    for request in random_requests(2000):
        metrics.record(*request)
        reference.record(*request)
    ours = generate_latest(registry)
    assert b"_created" in ours
    assert without_created_values(ours) == without_created_values(
        generate_latest(reference.registry)
    )


def test_a_series_is_created_when_its_first_request_ends() -> None:
    metrics, registry, _ = both()
    metrics.record(("/api/chat", 200, MODEL, "gpu1"), 0.2, None, None, 0, 0)
    created = [
        s.value
        for family in text_string_to_metric_families(generate_latest(registry).decode())
        for s in family.samples
        if s.name == "ollamux_requests_created"
    ]
    assert len(created) == 1
    series = metrics.requests.series[("/api/chat", "200", MODEL, "gpu1")]
    assert created[0] == series.created


def test_created_samples_follow_prometheus_clients_switch() -> None:
    metrics, registry, _ = both()
    metrics.record(("/api/chat", 200, MODEL, "gpu1"), 0.2, 0.1, 0.0, 1, 1)
    disable_created_metrics()
    try:
        text = generate_latest(registry)
    finally:
        enable_created_metrics()
    assert b"_created" not in text
    assert b"ollamux_requests_total" in text


def test_a_kind_of_request_exposes_at_zero_what_it_never_observed() -> None:
    metrics, registry, _ = both()
    metrics.record(("/api/chat", 200, MODEL, "gpu1"), 0.2, None, None, 0, 0)
    text = generate_latest(registry).decode()
    labels = 'endpoint="/api/chat",model="llama3.2:latest"'
    assert f"ollamux_time_to_first_chunk_seconds_count{{{labels}}} 0.0" in text
    assert 'ollamux_tokens_total{backend="gpu1",direction="in",model="llama3.2:latest"} 0.0' in text


def test_histogram_buckets_stay_exact_under_many_observations() -> None:
    family = HistogramFamily("h", "h", [], LATENCY_BUCKETS)
    rng = random.Random(3)
    values = [
        float(rng.choice(LATENCY_BUCKETS)) if i % 3 == 0 else rng.uniform(0, 700)
        for i in range(20000)
    ]
    for v in values:
        family.child(()).observe(v)
    samples = {
        s.labels.get("le", s.name): s.value
        for s in next(text_string_to_metric_families(generate_latest_of(family))).samples
    }
    for bound in LATENCY_BUCKETS:
        assert samples[str(float(bound))] == sum(1 for v in values if v <= bound)
    assert samples["+Inf"] == len(values)
    assert samples["h_sum"] == sum_in_order(values)


def test_a_value_on_a_bound_is_counted_in_that_bounds_bucket() -> None:
    family = HistogramFamily("h", "h", [], (0.5, 1))
    family.child(()).observe(0.5)
    family.child(()).observe(1.0)
    assert family.child(()).counts == [1, 1, 0]


def generate_latest_of(family: HistogramFamily) -> str:
    class One:
        def collect(self) -> Any:
            yield family.metric()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())  # type: ignore[arg-type]
    return generate_latest(registry).decode()


def sum_in_order(values: list[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


async def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def consistent(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> None:
    """Every finished request is in every series it updates, and no more."""
    chat = (("endpoint", "/api/chat"), ("model", MODEL))
    requests = sum(
        v
        for (name, labels), v in samples.items()
        if name == "ollamux_requests_total" and ("endpoint", "/api/chat") in labels
    )
    duration = samples.get(("ollamux_request_duration_seconds_count", chat), 0.0)
    ttft = samples.get(("ollamux_time_to_first_chunk_seconds_count", chat), 0.0)
    inf_labels = tuple(sorted((*chat, ("le", "+Inf"))))
    inf = samples.get(("ollamux_request_duration_seconds_bucket", inf_labels), 0.0)
    tokens_in = ("direction", "in"), ("backend", "gpu1"), ("model", MODEL)
    tokens = samples.get(("ollamux_tokens_total", tuple(sorted(tokens_in))), 0.0)
    assert requests == duration == ttft == inf
    assert samples.get(("ollamux_queue_wait_seconds_count", ()), 0.0) == requests
    assert tokens == 7 * requests  # the fake reports prompt_eval_count=7 on every answer


async def test_scrapes_during_many_concurrent_requests_see_consistent_numbers(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    seen: list[dict[Any, float]] = []

    async def chat() -> None:
        resp = await client.post("/api/chat", json={"model": MODEL, "messages": []})
        assert resp.status == 200
        await resp.read()

    async def watch(done: asyncio.Event) -> None:
        while not done.is_set():
            seen.append(await scrape(client))

    done = asyncio.Event()
    watcher = asyncio.create_task(watch(done))
    await asyncio.gather(*(chat() for _ in range(150)))
    done.set()
    await watcher
    final = await scrape(client)
    for samples in [*seen, final]:
        consistent(samples)
    labels = (("backend", "gpu1"), ("endpoint", "/api/chat"), ("model", MODEL), ("status", "200"))
    assert final[("ollamux_requests_total", labels)] == 150
    assert len(seen) >= 2


def test_a_kind_of_request_keeps_counting_after_the_cache_of_kinds_is_cleared(
    monkeypatch: Any,
) -> None:
    from ollamux.plugins.metrics import prom

    monkeypatch.setattr(prom, "_MAX_CACHED", 2)
    metrics, _, _ = both()
    kinds = [("/api/chat", status, MODEL, "gpu1") for status in (200, 404, 500)]
    for key in [*kinds, kinds[0]]:
        metrics.record(key, 0.2, 0.1, None, 3, 0)
    assert metrics.requests.series[("/api/chat", "200", MODEL, "gpu1")].value == 2
    assert metrics.duration.series[("/api/chat", MODEL)].counts[2] == 4  # 0.2 <= 0.25
    assert metrics.tokens.series[("in", MODEL, "gpu1")].value == 12
