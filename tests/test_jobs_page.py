"""The jobs web page in a real headless browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.browser import HAVE_CHROMIUM, chromium_page

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="chromium is not installed"),
]
MODEL = "llama3.2:latest"


@pytest.fixture
async def page() -> AsyncIterator[Any]:
    async with chromium_page(1100) as tab:
        tab.set_default_timeout(15000)
        yield tab


async def _gateway(gateway_client: Any, url: str, jobs: dict[str, Any]) -> tuple[Any, str]:
    client = await gateway_client({"backends": [{"url": url, "max_concurrency": 4}], "jobs": jobs})
    return client, str(client.make_url("")).rstrip("/")


async def test_submit_a_prompt_and_see_its_result(
    gateway_client: Any, fake_jobs: Any, page: Any, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    _backend, url = fake_jobs
    _client, base = await _gateway(gateway_client, url, {})
    await page.goto(base + "/")
    await expect(page.locator("#model option", has_text="qwen2.5:0.5b")).to_have_count(1)
    await page.select_option("#model", "qwen2.5:0.5b")
    await page.fill("#prompt", "hello from the browser")
    await page.click("#submit")
    await expect(page.locator("#current-status")).to_have_text("completed")
    await expect(page.locator("#current-result")).to_have_text("echo: hello from the browser")
    await expect(page.locator("#jobs-table tbody tr")).to_have_count(1)
    shot = os.environ.get("OLLAMUX_SCREENSHOT_DIR")
    if shot:
        await page.screenshot(path=str(Path(shot) / "jobs-page.png"), full_page=True)


async def test_the_list_pages_through_jobs(gateway_client: Any, fake_jobs: Any, page: Any) -> None:
    from playwright.async_api import expect

    _backend, url = fake_jobs
    client, base = await _gateway(gateway_client, url, {"workers": 0})
    for i in range(12):
        await client.post("/api/v1/prompt", json={"prompt": f"p{i}", "model": MODEL})
    await page.goto(base + "/list")
    rows = page.locator("#jobs-table tbody tr")
    await expect(rows).to_have_count(10)
    await expect(page.locator("#page-info")).to_have_text("page 1 of 2 · 12 jobs")
    await page.click("#next")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#page-info")).to_have_text("page 2 of 2 · 12 jobs")
    await expect(page.locator("#next")).to_be_disabled()


async def test_cancel_a_job_from_the_list(gateway_client: Any, fake_jobs: Any, page: Any) -> None:
    from playwright.async_api import expect

    _backend, url = fake_jobs
    client, base = await _gateway(gateway_client, url, {"workers": 0})
    resp = await client.post("/api/v1/prompt", json={"prompt": "wait", "model": MODEL})
    job_id = (await resp.json())["id"]
    await page.goto(base + "/list")
    row = page.locator(f'#jobs-table tbody tr[data-id="{job_id}"]')
    await expect(row.locator(".badge")).to_have_text("queued")
    await row.locator("button.cancel").click()
    await expect(row.locator(".badge")).to_have_text("cancelled")
    status = await (await client.get(f"/api/v1/prompt/{job_id}/status")).json()
    assert status["status"] == "cancelled"


async def test_a_streamed_prompt_is_followed_live_on_the_page(
    gateway_client: Any, fake_ollama: Any, page: Any
) -> None:
    from playwright.async_api import expect

    fake, url = fake_ollama
    fake.mode = "wait"  # the first word, then nothing until released
    client = await gateway_client({"backends": [{"url": url}]})
    await page.goto(str(client.make_url("/list")))
    await page.fill("#prompt", "tell me")
    await page.check("#stream")
    try:
        await page.click("#submit")
        await expect(page.locator("#current-output")).to_have_text("Hello")
    finally:
        fake.release.set()
    await expect(page.locator("#current-output")).to_have_text("Hello there, friend!")
    await expect(page.locator("#current-status")).to_have_text("completed")
