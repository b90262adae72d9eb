"""Probes and what selection makes of them: OpenAI backends learnt from /v1/models, the
backoff of a failing backend, cold loads placed on the backend holding fewest models."""

from __future__ import annotations

from typing import Any

from ollamux.backend import Backend
from ollamux.config_loader import build_config
from ollamux.fleet import Verdict
from ollamux.gateway import Gateway
from ollamux.plugin_manager import build_plugin_manager
from ollamux.plugins.health import health_of
from ollamux.plugins.selection import choose
from ollamux.testing import gateway_of
from tests.fakes.fleet import start_fakes, until


async def test_openai_backend_models_come_from_v1_models(
    gateway_client: Any, aiohttp_server: Any, fake_openai: Any
) -> None:
    fake, url = fake_openai
    fake.models = ["qwen2.5-72b"]
    ollama = await start_fakes(aiohttp_server, ["o"])
    client = await gateway_client(
        {
            "backends": [
                {"name": "o", "url": ollama["o"][2]},
                {"name": "v", "url": url, "api": "openai"},
            ],
            "routing": {"health_interval_s": 60},
        }
    )
    gw = gateway_of(client)
    await until(lambda: gw.backends["v"].models == {"qwen2.5-72b"}, what="v probed")
    assert [p.path for p in fake.probes] == ["/v1/models"]
    resp = await client.post(
        "/v1/chat/completions",
        json={"model": "qwen2.5-72b", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert resp.status == 200
    assert [r.body["model"] for r in fake.received if r.path == "/v1/chat/completions"] == [
        "qwen2.5-72b"
    ]


async def test_unreachable_backend_is_unhealthy_with_the_reason(gateway_client: Any) -> None:
    client = await gateway_client(
        {"backends": [{"name": "dead", "url": "http://127.0.0.1:9"}], "routing": {}}
    )
    gw = gateway_of(client)
    await until(lambda: gw.backends["dead"].failures >= 1)
    dead = gw.backends["dead"]
    assert dead.healthy is False
    assert "/api/tags" in dead.last_error
    health = await client.get("/ollamux/health")
    assert health.status == 503


def test_probes_of_a_failing_backend_back_off_to_the_limit() -> None:
    cfg = build_config({"routing": {"health_interval_s": 10, "probe_backoff_max_s": 30}})
    monitor = health_of(Gateway(cfg, build_plugin_manager(cfg))).monitor
    assert [monitor.backoff_s(f) for f in (1, 2, 3, 4, 5, 6, 50)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_model_load_goes_to_the_backend_holding_fewest_models() -> None:
    busy = {"m1:7b", "m2:7b"}
    backends = [
        Backend(name="a", url="http://a", models={"m3:7b"} | busy, loaded_models=set(busy)),
        Backend(name="b", url="http://b", models={"m3:7b"} | busy, loaded_models={"m1:7b"}),
    ]
    choice = choose(backends, "m3:7b", set(), True, 0.0)
    assert choice.verdict is Verdict.PICKED and choice.backend is backends[1]


def test_loaded_beats_idle_and_in_flight_beats_name() -> None:
    a = Backend(name="a", url="http://a", max_concurrency=4, in_flight=1)
    b = Backend(name="b", url="http://b", max_concurrency=4, in_flight=2, loaded_models={"m"})
    c = Backend(name="c", url="http://c", max_concurrency=4, in_flight=3, loaded_models={"m"})
    assert choose([a, b, c], "m", set(), True, 0.0).backend is b
    assert choose([a, b, c], "m", {"b"}, True, 0.0).backend is c
    assert choose([a, b, c], "m", {"b", "c"}, True, 0.0).backend is a
    assert choose([a, b, c], "m", {"a", "b", "c"}, True, 0.0).verdict is Verdict.EXHAUSTED
