"""A selection policy of a plugin's own replaces the built-in one without disabling anything,
and health probes, the wait queue, drain and the admin routes keep working beside it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ollamux import hookimpl
from ollamux.backend import Backend
from ollamux.cli import main
from ollamux.config_loader import build_config
from ollamux.fleet import Verdict, choose_with
from ollamux.plugin_manager import PluginError, build_plugin_manager
from ollamux.plugins.selection import choose
from ollamux.reload import reload_config
from ollamux.testing import gateway_of, test_config
from tests import last_by_name
from tests.fakes.fleet import calls, start_fakes, until

CHAT = {"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}]}
ONCE = {**CHAT, "stream": False}
DOCS = Path(__file__).parent.parent / "docs"


def chats(fakes: dict[str, Any], name: str) -> int:
    return len(calls(fakes[name][0], "/api/chat"))


async def last_by_name_fleet(
    gateway_client: Any, aiohttp_server: Any, names: list[str], **config: Any
) -> tuple[Any, dict[str, Any]]:
    fakes = await start_fakes(aiohttp_server, names)
    client = await gateway_client(
        {
            "backends": [{"name": n, "url": u} for n, (_, _, u) in fakes.items()],
            "routing": {"health_interval_s": 60},
            **config,
        },
        plugins=[("last_by_name", last_by_name)],
    )
    gw = gateway_of(client)
    await until(lambda: all(b.last_probe is not None for b in gw.backends.values()))
    return client, fakes


async def test_a_plugins_policy_wins_over_the_built_in_one(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await last_by_name_fleet(gateway_client, aiohttp_server, ["a", "b", "c"])
    for _ in range(3):
        resp = await client.post("/api/chat", json=ONCE)
        assert resp.status == 200
        assert (await resp.json())["done"] is True
    assert [chats(fakes, n) for n in ("a", "b", "c")] == [0, 0, 3]


async def test_a_replacement_policy_can_stand_in_for_disabled_selection(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await last_by_name_fleet(
        gateway_client, aiohttp_server, ["a", "b"], plugins={"disable": ["selection"]}
    )
    resp = await client.post("/api/chat", json=ONCE)
    assert resp.status == 200
    assert [chats(fakes, n) for n in ("a", "b")] == [0, 1]


async def test_backend_table_and_health_answer_beside_a_replacement_policy(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, _ = await last_by_name_fleet(gateway_client, aiohttp_server, ["a", "b"])
    resp = await client.get("/ollamux/backends")
    assert resp.status == 200
    doc = await resp.json()
    assert [b["name"] for b in doc["backends"]] == ["a", "b"]
    assert all(b["healthy"] for b in doc["backends"])
    assert doc["queue"] == {"depth": 0, "max": 1000, "timeout_s": 30.0, "wait_s_avg": 0.0}
    resp = await client.get("/ollamux/health")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_a_dead_backend_is_marked_unhealthy_and_skipped_by_a_replacement_policy(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a"])
    client = await gateway_client(
        {
            "backends": [
                {"name": "a", "url": fakes["a"][2]},
                {"name": "z-dead", "url": "http://127.0.0.1:9"},  # sorts last, refuses
            ],
            "routing": {"health_interval_s": 60},
        },
        plugins=[("last_by_name", last_by_name)],
    )
    gw = gateway_of(client)
    await until(lambda: gw.backends["z-dead"].failures >= 1, what="the dead one probed")
    assert gw.backends["z-dead"].healthy is False
    resp = await client.post("/api/chat", json=ONCE)
    assert resp.status == 200
    assert chats(fakes, "a") == 1
    health = await client.get("/ollamux/health")
    assert (await health.json())["status"] == "degraded"


async def test_a_full_backend_makes_a_request_wait_then_proceed_beside_a_replacement_policy(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await last_by_name_fleet(gateway_client, aiohttp_server, ["a", "b"])
    for fake, _, _ in fakes.values():
        fake.mode = "wait"
    first = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: chats(fakes, "b") == 1, what="first request on b")
    second = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: chats(fakes, "a") == 1, what="b full: second request on a")
    third = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: gateway_of(client).gauges["queue_depth"]() == 1, what="third waits")
    fakes["b"][0].release.set()
    await until(lambda: chats(fakes, "b") == 2, what="the waiter went to b")
    fakes["a"][0].release.set()
    for task in (first, second, third):
        resp = await task
        assert resp.status == 200
        assert (await resp.text()).count('"done": true') == 1
    assert gateway_of(client).gauges["queue_depth"]() == 0


async def test_drain_sends_work_elsewhere_beside_a_replacement_policy(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await last_by_name_fleet(gateway_client, aiohttp_server, ["a", "b"])
    resp = await client.post("/ollamux/backends/b/drain")
    assert resp.status == 200
    assert (await resp.json())["draining"] is True
    assert (await client.post("/api/chat", json=ONCE)).status == 200
    assert [chats(fakes, n) for n in ("a", "b")] == [1, 0]
    resp = await client.post("/ollamux/backends/b/undrain")
    assert (await resp.json())["draining"] is False
    assert (await client.post("/api/chat", json=ONCE)).status == 200
    assert [chats(fakes, n) for n in ("a", "b")] == [1, 1]


async def test_undrain_wakes_a_request_waiting_beside_a_replacement_policy(
    gateway_client: Any, aiohttp_server: Any
) -> None:
    client, fakes = await last_by_name_fleet(gateway_client, aiohttp_server, ["a", "b"])
    fakes["a"][0].mode = "wait"
    await client.post("/ollamux/backends/b/drain")
    held = asyncio.create_task(client.post("/api/chat", json=CHAT))
    await until(lambda: chats(fakes, "a") == 1)
    waiting = asyncio.create_task(client.post("/api/chat", json=ONCE))
    await until(lambda: gateway_of(client).gauges["queue_depth"]() == 1, what="it waits")
    await client.post("/ollamux/backends/b/undrain")
    resp = await waiting
    assert resp.status == 200
    assert chats(fakes, "b") == 1
    fakes["a"][0].release.set()
    assert (await held).status == 200


class CountingPolicyPlugin:
    """Hands out ``LastByName`` and counts how often it was asked."""

    def __init__(self) -> None:
        self.asked = 0

    @hookimpl
    def ollamux_selection_policy(self, gateway: Any) -> last_by_name.LastByName:
        self.asked += 1
        return last_by_name.LastByName()


async def test_the_policy_is_asked_for_at_start_and_after_a_reload_not_per_request(
    gateway_client: Any, aiohttp_server: Any, tmp_path: Path
) -> None:
    fakes = await start_fakes(aiohttp_server, ["a", "b"])
    config = {
        "backends": [{"name": n, "url": u} for n, (_, _, u) in fakes.items()],
        "routing": {"health_interval_s": 60},
    }
    counting = CountingPolicyPlugin()
    client = await gateway_client(config, plugins=[("counting", counting)])
    for _ in range(3):
        assert (await client.post("/api/chat", json=ONCE)).status == 200
    assert counting.asked == 1
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(config))
    assert await reload_config(gateway_of(client), path)
    assert counting.asked == 2
    assert (await client.post("/api/chat", json=ONCE)).status == 200
    assert [chats(fakes, n) for n in ("a", "b")] == [0, 4]


def test_disabling_selection_without_a_replacement_is_refused(tmp_path: Path) -> None:
    cfg = build_config(test_config({"plugins": {"disable": ["selection"]}}, tmp_path))
    with pytest.raises(PluginError) as refused:
        build_plugin_manager(cfg)
    message = str(refused.value)
    assert "\n" not in message
    assert "'selection'" in message and "ollamux_selection_policy" in message
    assert "'balancer'" in message


def test_plugins_command_refuses_disabled_selection_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "ollamux.yaml"
    config.write_text("plugins: {autoload: false, disable: [selection]}\n")
    monkeypatch.delenv("OLLAMUX_CONFIG", raising=False)
    assert main(["plugins", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "selection" in err[0] and "ollamux_selection_policy" in err[0]


def test_disabling_selection_and_balancer_with_a_selector_is_accepted(tmp_path: Path) -> None:
    class Selector:
        @hookimpl
        def ollamux_select_backend(self, exchange: Any) -> None:
            return None

    cfg = build_config(test_config({"plugins": {"disable": ["selection", "balancer"]}}, tmp_path))
    pm = build_plugin_manager(cfg, extra=[("selector", Selector())])
    assert pm.get_plugin("selection") is None and pm.get_plugin("balancer") is None
    assert pm.has_plugin("health") and pm.has_plugin("fleet_admin")


def test_the_replacing_selection_example_in_the_docs_is_this_tests_plugin() -> None:
    text = (DOCS / "plugins.md").read_text()
    section = text.split("## Replacing selection", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    assert block.group(1) == Path(last_by_name.__file__).read_text()


def _backend(name: str, **state: Any) -> Backend:
    return Backend(name=name, url=f"http://{name}", models={"m:latest"}, **state)


@pytest.mark.parametrize(
    ("backends", "model", "tried", "verdict"),
    [
        ([], "m", set(), Verdict.NO_BACKENDS),
        ([_backend("a")], "other", set(), Verdict.UNKNOWN_MODEL),
        ([_backend("a"), _backend("b")], "m", {"a", "b"}, Verdict.EXHAUSTED),
        ([_backend("a", draining=True)], "m", set(), Verdict.DRAINING),
        ([_backend("a", in_flight=1)], "m", set(), Verdict.FULL),
        ([_backend("a", busy_until=1e12)], "m", set(), Verdict.FULL),
        ([_backend("a", in_flight=1), _backend("b", healthy=False)], "m", set(), Verdict.FULL),
        ([_backend("a", healthy=False)], "m", set(), Verdict.PICKED),
        ([_backend("a", in_flight=1), _backend("b")], "m", set(), Verdict.PICKED),
    ],
)
def test_choose_with_keeps_the_built_in_policys_rules_and_verdicts(
    backends: list[Backend], model: str, tried: set[str], verdict: Verdict
) -> None:
    mine = choose_with(lambda candidates: candidates[-1], backends, model, tried, True, 0.0)
    built_in = choose(backends, model, tried, True, 0.0)
    assert mine.verdict is built_in.verdict is verdict
    assert (mine.backend is None) is (verdict is not Verdict.PICKED)
