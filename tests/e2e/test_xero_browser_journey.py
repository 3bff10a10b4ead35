"""A creditor connects Xero on the reference dashboard page (gateway/dashboard_page/), in
headless Chromium (Debian's package) driven by Playwright, through `aicollect run`'s real
processes (tests/helpers/journey.py: the gateway in local mode, the integration service
with its workers, the matcher, and the Xero emulator with its consent page and signed
webhooks) on the test's PostgreSQL database.

In order: the Xero panel without Connect until support enables Xero for the tenant (and
none while Xero's kill switch is on), Connect, Xero's consent page choosing one of two
organisations (the app's ``authEventId`` ties the new connection to this consent), the
backfill, the preview listing exactly the overdue sales invoices (ACCREC; not the bill,
not the invoice still within terms), one excluded, confirm, and a payment the bookkeeper
records in Xero closing a placement as paid out-of-band, seen on its card with its
timeline; then the disconnect from the Xero panel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from aicollect.matching.v1 import matching_service_pb2 as mpb
from tests.e2e.pipeline import TENANT
from tests.helpers.journey import Journey, running_journey

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORGANISATION = "Acme Widgets Ltd (NZ)"
OVERDUE = "2026-06-30"
NOT_YET_DUE = "2030-01-31"


@pytest_asyncio.fixture
async def journey(database_url: str) -> AsyncIterator[Journey]:
    async with running_journey(database_url) as running:
        yield running


async def _books(j: Journey) -> tuple[str, dict[str, str], str]:
    """Two organisations in Xero; the creditor's holds two customers, three overdue sales
    invoices, an overdue bill (ACCPAY, money the creditor owes) and a sales invoice still
    within its terms. Returns the organisation, its overdue invoices (number -> id), and
    the other organisation's name."""
    org = (await j.xero("POST", "organisations", {"name": ORGANISATION}))["tenant_id"]
    other = "Acme Holdings Ltd"
    await j.xero("POST", "organisations", {"name": other})

    async def contact(name: str) -> str:
        made = await j.xero("POST", f"organisations/{org}/contacts", {"name": name})
        return str(made["Contacts"][0]["ContactID"])

    async def invoice(contact_id: str, number: str, amount: str, due: str, kind: str) -> str:
        body: dict[str, Any] = {
            "contact_id": contact_id,
            "amount": amount,
            "date": "2026-05-31",
            "due_date": due,
            "number": number,
            "type": kind,
        }
        made = await j.xero("POST", f"organisations/{org}/invoices", body)
        return str(made["Invoices"][0]["InvoiceID"])

    ridge, harbour = await contact("Ridge Cafe"), await contact("Harbour Joinery")
    overdue = {
        "INV-0101": await invoice(ridge, "INV-0101", "480.00", OVERDUE, "ACCREC"),
        "INV-0102": await invoice(ridge, "INV-0102", "1250.50", OVERDUE, "ACCREC"),
        "INV-0103": await invoice(harbour, "INV-0103", "95.00", OVERDUE, "ACCREC"),
    }
    await invoice(harbour, "BILL-7", "300.00", OVERDUE, "ACCPAY")
    await invoice(harbour, "INV-0104", "700.00", NOT_YET_DUE, "ACCREC")
    return org, overdue, other


async def _open(browser: Browser, j: Journey) -> Page:
    context = await browser.new_context(viewport={"width": 1280, "height": 860})
    page = await context.new_page()
    await page.goto(f"{j.gateway_url}/dashboard/#token={j.bearer(TENANT)}")
    return page


async def test_a_creditor_connects_xero_and_a_payment_in_xero_closes_a_placement(
    journey: Journey, browser: Browser
) -> None:
    j = journey
    org, overdue, other = await _books(j)
    panel = "#xero-panel"

    # Xero is not enabled for the tenant yet: its panel says so and offers no Connect.
    page = await _open(browser, j)
    await expect(page.locator(f"{panel} .panel-state")).to_have_text("Not connected")
    await expect(page.locator(f"{panel} .panel-disabled")).to_be_visible()
    await expect(page.locator(f"{panel} .connect")).to_be_hidden()
    await expect(page.locator("#qbo-panel .connect")).to_be_visible()  # QBO's flag is on

    # Support enables Xero; during a Xero incident (its own kill switch) still no Connect.
    await j.enable(TENANT, "xero")
    await j.kill_switch(on=True, provider="xero")
    await page.reload()
    await expect(page.locator(f"{panel} .panel-killed")).to_be_visible()
    await expect(page.locator(f"{panel} .connect")).to_be_hidden()
    await expect(page.locator("#qbo-panel .panel-killed")).to_be_hidden()
    await j.kill_switch(on=False, provider="xero")
    await page.reload()
    await expect(page.locator(f"{panel} .panel-disabled")).to_be_hidden()
    await expect(page.locator(f"{panel} .connect")).to_have_text("Connect Xero")

    # Xero's consent page (the emulator's): two organisations, the creditor's chosen.
    await page.click(f"{panel} .connect")
    await page.wait_for_url(f"{j.xero_url}/**")
    choices = page.locator("input[name=tenant]")
    await expect(choices).to_have_count(2)
    await page.locator(f"input[name=tenant][value='{org}']").check()
    others = page.locator(f"input[name=tenant]:not([value='{org}'])")
    await others.uncheck()
    assert other in await page.content()
    await page.click("button.allow")

    # Back on the dashboard: connected, the backfill runs, then the preview.
    await page.wait_for_url(f"{j.gateway_url}/dashboard/?xero=connected")
    await expect(page.locator("#notice")).to_contain_text("Xero is connected")
    await expect(page.locator(f"{panel} .panel-state")).to_have_text("Connected")
    await expect(page.locator(f"{panel} .panel-company")).to_have_text(f"{ORGANISATION} ({org})")
    await expect(page.locator(f"{panel} .connect")).to_be_hidden()
    await expect(page.locator(f"{panel} .disconnect")).to_be_visible()
    await expect(page.locator("#qbo-panel .panel-state")).to_have_text("Not connected")
    await expect(page.locator("#preview-card")).to_be_visible(timeout=60_000)
    await expect(page.locator(f"{panel} .panel-last-sync")).to_contain_text(" UTC")

    # The preview lists exactly the overdue sales invoices (ACCREC), by their ids.
    rows = page.locator("#preview-table tbody tr")
    await expect(rows).to_have_count(len(overdue))
    listed = {await rows.nth(n).get_attribute("data-invoice") for n in range(len(overdue))}
    assert listed == set(overdue.values())
    excluded = overdue["INV-0103"]
    row = page.locator(f'tr[data-invoice="{excluded}"]')
    await expect(row).to_contain_text("Harbour Joinery")
    await row.locator("button.exclude").click()
    await expect(row).to_have_class("excluded")
    await expect(page.locator("#preview-totals")).to_contain_text("1 excluded")
    await page.click("#confirm")
    await expect(page.locator("#notice")).to_contain_text("2 placements confirmed")
    await expect(page.locator("#preview-card")).to_be_hidden()
    placed = (
        await j.matching.ListPlacements(mpb.ListPlacementsRequest(tenant_id=TENANT))
    ).placements
    assert {p.invoice_id for p in placed} == {overdue["INV-0101"], overdue["INV-0102"]}
    assert {p.status for p in placed} == {mpb.PLACEMENT_STATUS_ACTIVE}

    # The bookkeeper records the debtor's payment in Xero: paid out-of-band.
    paid_id = overdue["INV-0102"]
    await j.xero("POST", f"organisations/{org}/payments", {"invoice_id": paid_id})
    paid = await j.status_becomes(paid_id, mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND, within=90)
    still = await j.placement(overdue["INV-0101"])
    assert still is not None
    assert still.status == mpb.PLACEMENT_STATUS_ACTIVE

    await page.click("header nav button[data-view=placements]")
    await page.select_option("#filter-status", "resolved_out_of_band")
    await page.click("#filter-apply")
    card = page.locator(f'article.placement[data-placement="{paid.placement_id}"]')
    await expect(page.locator("article.placement")).to_have_count(1)
    await expect(card.locator("h3")).to_contain_text("Invoice INV-0102")
    await expect(card.locator(".badge").first).to_have_text("Closed — paid out-of-band")
    await expect(card.locator(".timeline")).to_contain_text("placement.resolved_out_of_band")

    # Disconnect from the Xero panel: the dialog names Xero and the organisation; the
    # organisation is released in Xero; the placement still open goes on being collected.
    await page.click("header nav button[data-view=settings]")
    await page.click(f"{panel} .disconnect")
    await expect(page.locator("#disconnect-dialog h2")).to_have_text("Disconnect Xero?")
    await expect(page.locator("#dc-company")).to_have_text(f"{ORGANISATION} ({org})")
    await expect(page.locator("#dc-continuing")).to_have_text(
        "1 active placement (NZ$480.00 open) will continue to be collected."
    )
    await page.click("#dc-confirm")
    await expect(page.locator("#notice")).to_contain_text("Xero disconnected")
    await expect(page.locator(f"{panel} .panel-state")).to_have_text("Disconnected")
    await expect(page.locator(f"{panel} .connect")).to_be_visible()
    released = await j.xero("GET", f"connections?tenant_id={org}")
    assert (released["connections"] if isinstance(released, dict) else released) == []
    still = await j.placement(overdue["INV-0101"])
    assert still is not None
    assert still.status == mpb.PLACEMENT_STATUS_ACTIVE
    await page.context.close()
