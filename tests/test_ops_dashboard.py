"""The dashboard at /ollamux/, rendered in headless chromium against live data."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.browser import chromium_page

pytestmark = pytest.mark.slow

MODEL = "llama3.2:latest"


@pytest.fixture
async def browser_page() -> Any:
    async with chromium_page(1280) as page:
        yield page


async def test_dashboard_shows_backends_live_tasks_and_charts(
    gateway_client: Any, fake_ollama: Any, browser_page: Any, tmp_path: Path
) -> None:
    fake, url = fake_ollama
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    for _ in range(3):
        await (await client.post("/api/generate", json={"model": MODEL, "prompt": "x"})).read()
    fake.mode = "wait"
    held = await client.post(
        "/api/chat", json={"model": MODEL, "messages": []}, headers={"X-Task-Id": "live-1"}
    )
    await held.content.readline()

    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    external: list[str] = []
    base = str(client.make_url(""))
    page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
    await page.goto(str(client.make_url("/ollamux/")))

    await page.wait_for_selector('#backends tr[data-backend="gpu1"]', timeout=15000)
    await page.wait_for_selector("#tasks tr[data-task]", timeout=15000)
    assert await page.text_content("#status") == "live"
    assert await page.text_content("#inflight") == "1"
    assert int(await page.text_content("#total") or 0) >= 3
    backend_row = await page.text_content('#backends tr[data-backend="gpu1"]')
    assert "healthy" in (backend_row or "")
    assert "1 / 1" in (backend_row or "")
    task_row = await page.text_content("#tasks tr[data-task]")
    assert "/api/chat" in (task_row or "")
    assert MODEL in (task_row or "")
    painted = await page.evaluate(
        """() => ['chart-rps', 'chart-latency'].map((id) => {
             const c = document.getElementById(id);
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
             return n; })"""
    )
    assert all(n > 100 for n in painted)
    await page.wait_for_selector('#gauges td[data-gauge="queue_depth"]', timeout=15000)
    await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

    fake.release.set()
    await held.read()
    await page.wait_for_selector("#tasks td.empty", timeout=15000)
    assert errors == []
    assert external == []


async def test_dashboard_is_plain_html_without_external_assets(gateway_client: Any) -> None:
    client = await gateway_client({"backends": [{"url": "http://127.0.0.1:9"}]})
    resp = await client.get("/ollamux/")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert "http://" not in html and "https://" not in html
    js = await client.get("/ollamux/static/dashboard.js")
    assert js.status == 200
    assert "https://" not in await js.text()
    assert (await client.get("/ollamux/static/..%2Fusage.py")).status == 404


async def test_dashboard_shows_a_running_requests_tokens_rising_and_cancels_it(
    gateway_client: Any, fake_ollama: Any, browser_page: Any
) -> None:
    fake, url = fake_ollama
    fake.mode, fake.delay_s, fake.words = "slow", 0.1, [f" w{i}" for i in range(300)]
    client = await gateway_client({"backends": [{"name": "gpu1", "url": url}]})
    held = await client.post(
        "/api/chat", json={"model": MODEL, "messages": []}, headers={"X-Task-Id": "ui-1"}
    )
    await held.content.readline()
    page = browser_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(str(client.make_url("/ollamux/")))
    tokens = '#requests tr[data-live-task="ui-1"] td.tokens'
    await page.wait_for_selector(tokens, timeout=15000)
    seen = [int(await page.text_content(tokens) or 0)]
    while len(set(seen)) < 3:  # the feed moves the count on its own (bounded by the fake)
        await page.wait_for_function(
            f"(n) => +document.querySelector('{tokens}').textContent > n", arg=seen[-1]
        )
        seen.append(int(await page.text_content(tokens) or 0))
    assert seen == sorted(seen)

    await page.click('#requests button[data-cancel="ui-1"]')
    await page.wait_for_selector(
        '#requests tr[data-live-task="ui-1"] td.state:has-text("CANCELLED")', timeout=15000
    )
    await asyncio.wait_for(fake.disconnected.wait(), 15)
    assert b"cancelled by anonymous" in await held.read()
    assert errors == []
