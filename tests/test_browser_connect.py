"""A creditor connecting QuickBooks in a real browser: headless Chromium (Debian's package)
driven by Playwright, through the gateway and the emulator's consent page."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, async_playwright
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Emulator
from tests.stack import Stack, enable_tenant, full_stack

pytestmark = pytest.mark.browser

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


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[Browser]:
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


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Stack]:
    async with full_stack(engine, emulator) as s:
        yield s


async def _authorize_url(stack: Stack) -> str:
    await enable_tenant(stack, "acme")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{stack.gateway_url}/v1/integrations/qbo/connect-url",
            headers={"Authorization": stack.bearer("acme")},
        ) as resp,
    ):
        assert resp.status == 200
        return str((await resp.json())["authorize_url"])


async def test_connect_in_a_browser_lands_connected(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    page = await browser.new_page()
    await page.goto(await _authorize_url(stack))
    await page.screenshot(path=str(tmp_path / "consent.png"))
    consent = await page.content()
    assert "Acme Widgets LLC" in consent
    assert "payroll" not in consent.lower()  # we ask for accounting only
    await page.select_option("select#realm_id", label="Acme Widgets LLC (4620816365000001)")
    await page.click("button.connect")
    await page.wait_for_url(f"{stack.dashboard_url}?qbo=connected")
    await page.screenshot(path=str(tmp_path / "connected.png"))
    status = await stack.deps.connections.status("acme")
    assert status.state == "connected"
    assert status.company_name == "Acme Widgets LLC"


async def test_cancel_in_a_browser_lands_with_the_error(stack: Stack, browser: Browser) -> None:
    page = await browser.new_page()
    await page.goto(await _authorize_url(stack))
    await page.click("text=Cancel")
    await page.wait_for_url(f"{stack.dashboard_url}?qbo=error&reason=access_denied")
    status = await stack.deps.connections.status("acme")
    assert status.state == "not_connected"
