"""Headless chromium for the page tests (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = os.path.exists(CHROMIUM)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@asynccontextmanager
async def chromium_page(width: int, height: int = 900, **options: Any) -> AsyncIterator[Any]:
    """A page in a fresh headless chromium, closed on exit; skips the test without one.

    ``options`` go to Playwright's ``new_page`` (``http_credentials=...``, for instance)."""
    if not HAVE_CHROMIUM:
        pytest.skip("chromium is not installed")
    playwright_api = pytest.importorskip("playwright.async_api")
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield await browser.new_page(viewport={"width": width, "height": height}, **options)
        finally:
            await browser.close()
