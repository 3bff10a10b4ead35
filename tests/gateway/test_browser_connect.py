"""A creditor connecting QuickBooks in a real browser: headless Chromium (Debian's package)
driven by Playwright, through the gateway and the emulator's consent page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Emulator
from tests.stack import Stack, enable_tenant, full_stack

pytestmark = pytest.mark.browser


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Stack]:
    async with full_stack(engine, emulator) as s:
        yield s


# What the dashboard's "Connect QuickBooks" button does: a credentialed cross-origin fetch
# (the dashboard and the gateway share a site, not an origin), so that the browser keeps
# the gateway's HttpOnly binding cookie for the callback.
CONNECT_FETCH = """async ([url, bearer]) => {
  const resp = await fetch(url, {
    method: "POST",
    credentials: "include",
    headers: {Authorization: bearer},
  });
  return {status: resp.status, body: await resp.json()};
}"""


async def _authorize_url(stack: Stack, page: Page) -> str:
    """Asks for a connect URL from the dashboard's page, as the dashboard does."""
    await enable_tenant(stack, "acme")
    await page.goto(stack.dashboard_url)
    reply = await page.evaluate(
        CONNECT_FETCH,
        [f"{stack.gateway_url}/v1/integrations/qbo/connect-url", stack.bearer("acme")],
    )
    assert reply["status"] == 200, reply
    assert "browser_binding" not in reply["body"]
    return str(reply["body"]["authorize_url"])


async def test_connect_in_a_browser_lands_connected(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    page = await browser.new_page()
    await page.goto(await _authorize_url(stack, page))
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
    await page.goto(await _authorize_url(stack, page))
    await page.click("text=Cancel")
    await page.wait_for_url(f"{stack.dashboard_url}?qbo=error&reason=access_denied")
    status = await stack.deps.connections.status("acme")
    assert status.state == "not_connected"


async def test_another_browser_opening_the_link_is_refused(stack: Stack, browser: Browser) -> None:
    """Connection fixation: the creditor's authorize link, sent to a bookkeeper who opens it
    in their own browser and picks their own books, must not connect them to the creditor."""
    creditor = await browser.new_context()
    bookkeeper = await browser.new_context()
    try:
        authorize_url = await _authorize_url(stack, await creditor.new_page())
        page = await bookkeeper.new_page()
        await page.goto(authorize_url)
        await page.select_option("select#realm_id", label="Acme Widgets LLC (4620816365000001)")
        await page.click("button.connect")
        await page.wait_for_url(f"{stack.dashboard_url}?qbo=error&reason=browser_mismatch")
    finally:
        await bookkeeper.close()
        await creditor.close()
    status = await stack.deps.connections.status("acme")
    assert status.state == "not_connected"
    assert stack.emulator.state.oauth.token_calls["authorization_code"] == 0
