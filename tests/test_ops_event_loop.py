"""``server.event_loop``: uvloop when installed (``auto``), the standard loop on request,
and a clear error when uvloop is required but missing."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

import aiohttp
import pytest

from ollamux import event_loop
from ollamux.cli import main

uvloop = pytest.importorskip("uvloop")


async def _loop_name() -> str:
    return event_loop.loop_name(asyncio.get_running_loop())


def _without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )


def test_auto_runs_on_uvloop_when_it_is_installed() -> None:
    assert event_loop.run(_loop_name(), "auto") == "uvloop"


def test_asyncio_runs_on_the_standard_loop() -> None:
    assert event_loop.run(_loop_name(), "asyncio") == "asyncio"


def test_auto_without_uvloop_runs_on_the_standard_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    _without_uvloop(monkeypatch)
    assert event_loop.run(_loop_name(), "auto") == "asyncio"


def test_serve_requiring_a_missing_uvloop_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _without_uvloop(monkeypatch)
    monkeypatch.setenv("OLLAMUX_SERVER__EVENT_LOOP", "uvloop")
    assert main(["serve", "--backend", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "ollamux: config error: server.event_loop is uvloop but uvloop is not installed"
        " (pip install uvloop)"
    )


def test_an_unknown_event_loop_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OLLAMUX_SERVER__EVENT_LOOP", "tokio")
    assert main(["check"]) == 2
    assert "server.event_loop" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("choice", ["uvloop", "asyncio"])
async def test_a_served_process_streams_on_the_loop_it_was_given(
    spawn_gateway: Any, fake_ollama: Any, choice: str
) -> None:
    _fake, url = fake_ollama
    gw = await spawn_gateway({"server": {"event_loop": choice}, "backends": [{"url": url}]})
    await gw.wait_for(lambda: f"event loop: {choice}" in gw.log(), "the listening line")
    body = {"model": "llama3.2:latest", "prompt": "hi"}
    async with (
        aiohttp.ClientSession() as client,
        client.post(gw.url + "/api/generate", json=body) as resp,
    ):
        lines = [line async for line in resp.content if line.strip()]
    assert resp.status == 200
    assert len(lines) > 1
    assert b'"done":true' in lines[-1].replace(b" ", b"")
