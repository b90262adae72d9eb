"""Prometheus metrics at /metrics: they change as requests flow, scraped and parsed."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from ollamux.plugins.metrics.prom import endpoint_label
from ollamux.plugins.metrics.usage import UsageTransform, parse_usage
from ollamux.testing import gateway_of

MODEL = "llama3.2:latest"


async def scrape(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """name + sorted labels -> value, for every sample."""
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(await resp.text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_requests_are_counted_by_endpoint_status_model_and_backend(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    before = await scrape(client)
    for _ in range(2):
        resp = await client.post("/api/chat", json={"model": MODEL, "messages": []})
        await resp.read()
    after = await scrape(client)
    labels = {"endpoint": "/api/chat", "status": "200", "model": MODEL, "backend": "gpu1"}
    assert sample(before, "ollamux_requests_total", **labels) == 0
    assert sample(after, "ollamux_requests_total", **labels) == 2


async def test_a_model_the_backend_refuses_is_counted_with_its_status(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    resp = await client.post("/api/chat", json={"model": "nope", "messages": []})
    assert resp.status == 404
    after = await scrape(client)
    # No backend lists "nope": a name a client made up is never a label value.
    labels = {"endpoint": "/api/chat", "status": "404", "model": "other", "backend": "gpu1"}
    assert sample(after, "ollamux_requests_total", **labels) == 1


async def test_latency_and_time_to_first_chunk_histograms_observe_each_request(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    resp = await client.post("/api/generate", json={"model": MODEL, "prompt": "hi"})
    await resp.read()
    after = await scrape(client)
    labels = {"endpoint": "/api/generate", "model": MODEL}
    assert sample(after, "ollamux_request_duration_seconds_count", **labels) == 1
    assert sample(after, "ollamux_time_to_first_chunk_seconds_count", **labels) == 1
    assert sample(after, "ollamux_request_duration_seconds_sum", **labels) > 0.0
    assert sample(after, "ollamux_queue_wait_seconds_count") == 1


async def test_tokens_are_read_from_ollamas_final_line(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    resp = await client.post("/api/chat", json={"model": MODEL, "messages": []})
    await resp.read()
    after = await scrape(client)
    # the fake reports prompt_eval_count=7 and eval_count=len(words)=4
    assert sample(after, "ollamux_tokens_total", direction="in", model=MODEL, backend="gpu1") == 7
    assert sample(after, "ollamux_tokens_total", direction="out", model=MODEL, backend="gpu1") == 4


async def test_tokens_are_read_from_openai_usage(gateway_client: Any, fake_openai: Any) -> None:
    _fake, url = fake_openai
    client = await gateway_client({"backends": [{"name": "vllm", "url": url, "api": "openai"}]})
    body = {"model": "qwen2.5-7b", "messages": [{"role": "user", "content": "hi"}]}
    resp = await client.post("/v1/chat/completions", json=body)
    usage = (await resp.json())["usage"]
    after = await scrape(client)
    labels = {"model": "qwen2.5-7b", "backend": "vllm"}
    assert sample(after, "ollamux_tokens_total", direction="in", **labels) == usage["prompt_tokens"]
    assert (
        sample(after, "ollamux_tokens_total", direction="out", **labels)
        == usage["completion_tokens"]
    )


async def test_a_translated_stream_is_counted_by_its_translation_without_a_tail_reader(
    gateway_client: Any, fake_ollama: Any
) -> None:
    readers: list[object] = []

    class Watch:
        from ollamux import hookimpl

        @hookimpl
        def ollamux_request_finished(self, exchange: Any) -> None:
            readers.append(exchange.state.get("metrics"))

    _fake, url = fake_ollama
    client = await gateway_client(
        {"backends": [{"name": "gpu1", "url": url}]}, plugins=[("watch", Watch())]
    )
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": True}
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 200
    await resp.read()
    after = await scrape(client)
    assert sample(after, "ollamux_tokens_total", direction="in", model=MODEL, backend="gpu1") == 7
    assert sample(after, "ollamux_tokens_total", direction="out", model=MODEL, backend="gpu1") == 4
    assert readers == [None]  # no UsageTransform read the answer's bytes again


async def test_usage_filled_by_translation_wins_over_the_body(
    gateway_client: Any, fake_ollama: Any
) -> None:
    class FillsUsage:
        from ollamux import hookimpl

        @hookimpl
        def ollamux_upstream_started(self, exchange: Any) -> None:
            exchange.usage = {"prompt_tokens": 100, "completion_tokens": 50}

    _fake, url = fake_ollama
    client = await gateway_client(
        {"backends": [{"name": "gpu1", "url": url}]}, plugins=[("fills", FillsUsage())]
    )
    resp = await client.post("/api/chat", json={"model": MODEL, "messages": []})
    await resp.read()
    after = await scrape(client)
    assert sample(after, "ollamux_tokens_total", direction="in", model=MODEL, backend="gpu1") == 100


async def test_in_flight_counts_a_request_while_it_streams(
    gateway_client: Any, fake_ollama: Any
) -> None:
    fake, url = fake_ollama
    fake.mode = "wait"
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    resp = await client.post("/api/chat", json={"model": MODEL, "messages": []})
    await resp.content.readline()
    during = await scrape(client)
    fake.release.set()
    await resp.read()
    after = await scrape(client)
    assert sample(during, "ollamux_requests_in_flight") == 1
    assert sample(during, "ollamux_backend_in_flight", backend="gpu1") == 1
    assert sample(after, "ollamux_requests_in_flight") == 0


async def test_backend_health_and_capacity_are_read_at_scrape_time(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client(
        {"backends": [{"name": "gpu1", "url": url, "max_concurrency": 3}]}
    )
    gateway_of(client).backends["gpu1"].healthy = False
    after = await scrape(client)
    assert sample(after, "ollamux_backend_healthy", backend="gpu1") == 0
    assert sample(after, "ollamux_backend_max_concurrency", backend="gpu1") == 3


async def test_plugin_gauges_and_counters_are_exported(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    gw = gateway_of(client)
    gw.gauges["queue_depth"] = lambda: 5
    gw.gauges["jobs_queued"] = lambda: 12
    gw.gauges["broken"] = lambda: 1 / 0
    gw.counters["task_store_errors"] += 2
    after = await scrape(client)
    assert sample(after, "ollamux_queue_depth") == 5
    assert sample(after, "ollamux_jobs_queued") == 12
    assert sample(after, "ollamux_task_store_errors_total") == 2
    assert not any(name == "ollamux_broken" for name, _ in after)


async def test_each_app_has_its_own_registry(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    first = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    second = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    resp = await first.post("/api/chat", json={"model": MODEL, "messages": []})
    await resp.read()
    labels = {"endpoint": "/api/chat", "status": "200", "model": MODEL, "backend": "gpu1"}
    assert sample(await scrape(first), "ollamux_requests_total", **labels) == 1
    assert sample(await scrape(second), "ollamux_requests_total", **labels) == 0


def test_unknown_paths_share_one_endpoint_label() -> None:
    assert endpoint_label("/api/chat") == "/api/chat"
    assert endpoint_label("/v1/models/llama3") == "/v1/models/{model}"
    assert endpoint_label("/wp-admin/x.php") == "other"


def test_usage_is_found_in_a_final_line_split_across_chunks() -> None:
    t = UsageTransform()
    body = b'{"done":false}\n' * 2000 + b'{"done":true,"prompt_eval_count":11,"eval_count":22}\n'
    for i in range(0, len(body), 7):
        assert t.feed(body[i : i + 7]) == body[i : i + 7]
    t.end()
    assert t.usage == {"prompt_tokens": 11, "completion_tokens": 22}


def test_last_usage_event_of_an_sse_stream_wins() -> None:
    tail = (
        b'data: {"usage": null}\n\n'
        b'data: {"usage": {"prompt_tokens": 3, "completion_tokens": 9}}\n\ndata: [DONE]\n\n'
    )
    assert parse_usage(tail) == {"prompt_tokens": 3, "completion_tokens": 9}


async def test_plugin_gauges_named_total_are_exported_as_counters(
    gateway_client: Any, fake_ollama: Any
) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    gateway_of(client).gauges["widget_errors_total"] = lambda: 3
    resp = await client.get("/metrics")
    text = await resp.text()
    assert "# TYPE ollamux_widget_errors_total counter" in text
    assert "ollamux_widget_errors_total 3.0" in text


async def test_task_store_errors_are_counted(gateway_client: Any, fake_ollama: Any) -> None:
    from ollamux.plugins.tasks import TRACKER

    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}]})
    assert client.app is not None
    writer = client.app[TRACKER].writer

    async def store_down(records: Any) -> None:
        raise ConnectionError("store down")

    writer.store.put_many = store_down
    resp = await client.post("/api/chat", json={"model": MODEL, "messages": []})
    assert resp.status == 200  # requests go on without the store
    await resp.read()
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        after = await scrape(client)
        if sample(after, "ollamux_task_store_errors_total") >= 1:
            break
        assert asyncio.get_running_loop().time() < deadline, "no store error counted"
        await asyncio.sleep(0.05)
    assert sample(after, "ollamux_tasks_store_up") == 0


async def test_jobs_by_state_are_exported(gateway_client: Any, fake_ollama: Any) -> None:
    _fake, url = fake_ollama
    client = await gateway_client({"backends": [{"url": url}], "jobs": {"store": "sqlite"}})
    after = await scrape(client)
    for state in ("queued", "processing", "running"):
        assert ("ollamux_jobs_" + state, ()) in after
