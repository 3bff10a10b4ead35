"""Headless Chromium (Debian's package) for the browser tests, driven by Playwright; never a
downloaded browser. The ``browser`` fixture (tests/conftest.py) opens it."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HAVE_CHROMIUM = Path(CHROMIUM).exists()
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, or a skip (a failure in CI) when it is not installed."""
    if not HAVE_CHROMIUM:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing in CI; scripts/ensure_system_deps.sh installs it")
        pytest.skip("Debian's chromium package is not installed (make test installs it)")
    async with async_playwright() as p:
        instance = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield instance
        finally:
            await instance.close()
