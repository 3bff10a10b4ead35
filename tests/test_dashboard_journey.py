"""A creditor's whole journey on the reference dashboard page (gateway/dashboard_page/), in
headless Chromium (Debian's package) driven by Playwright, through the real pipeline: the
gateway in local mode, the integration service with its workers, the matcher, and the
Intuit emulator with its consent page and signed webhooks.

Settings (Connect only for an enabled tenant), consent, the initial sync in progress, the
placement preview (one candidate excluded, then confirmed), a payment recorded in
QuickBooks closing a placement as paid out-of-band (the list shows it with its audit
timeline), the disconnect confirmation dialog, the disconnect with all outreach stopped,
and a day's reconciliation report as JSON and CSV. With ``AICOLLECT_SAVE_SCREENSHOTS=1``
the six screenshots of the product page's TODO list are written to ``docs/screenshots/``
(docs/creditor-walkthrough.md).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from google.protobuf.field_mask_pb2 import FieldMask
from playwright.async_api import Browser, Page, ViewportSize, expect
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import admin_service_pb2 as iapb
from aicollect.integration.v1 import admin_service_pb2_grpc as iagrpc
from aicollect.matching.v1 import matching_admin_service_pb2 as apb
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as agrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from emulators.qbo.config import CompanySpec
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator, running_emulator
from tests.e2e.pipeline import TENANT, Pipeline, running_pipeline

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 860}


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[Emulator]:
    company = CompanySpec(
        realm_id=REALM_ID, name="Acme Widgets LLC", customers=5, invoices=14, overdue_fraction=0.6
    )
    async with running_emulator(company) as running:
        yield running


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    """Tenant acme enabled, not connected; the consent screen returns to the gateway's page."""
    async with running_pipeline(
        engine, emulator, connected=False, gateway_dashboard=True
    ) as running:
        yield running


def _shots(tmp_path: Path) -> Path:
    if os.environ.get("AICOLLECT_SAVE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        return SHOTS
    return tmp_path


async def _open(chromium: Browser, p: Pipeline, tenant: str) -> Page:
    context = await chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = await context.new_page()
    token = p.stack.bearer(tenant).removeprefix("Bearer ")
    await page.goto(f"{p.stack.gateway_url}/dashboard/#token={token}")
    return page


async def _faults(p: Pipeline, method: str, body: dict[str, object] | None = None) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, f"{p.emulator.url}/_emulator/faults", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def _kill_switch(p: Pipeline, *, on: bool) -> None:
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        await iagrpc.AdminServiceStub(channel).UpdatePlatformSettings(
            iapb.UpdatePlatformSettingsRequest(
                settings=iapb.PlatformSettings(qbo_kill_switch=on),
                update_mask=FieldMask(paths=["qbo_kill_switch"]),
                actor="oncall",
                reason="walkthrough: an incident drill",
            )
        )


async def _pay_in_books(p: Pipeline, placement: mpb.Placement) -> None:
    """The bookkeeper records the debtor's check against the invoice in QuickBooks."""
    minor = placement.balance.minor_units
    amount = f"{minor // 100}.{minor % 100:02d}"
    await p.control(
        "POST",
        "payments",
        {
            "customer_id": placement.customer_id,
            "amount": amount,
            "lines": [{"invoice_id": placement.invoice_id, "amount": amount}],
            "ref_num": "4471",
            "private_note": "check mailed to the creditor",
        },
    )


async def test_a_creditor_connects_previews_sees_a_payment_and_disconnects(
    pipeline: Pipeline,
    browser: Browser,
    tmp_path: Path,
) -> None:
    p, shots = pipeline, _shots(tmp_path)

    # A tenant whose flag is off sees the panel without a Connect button.
    other = await _open(browser, p, "globex")
    await expect(other.locator("#panel-state")).to_have_text("Not connected")
    await expect(other.locator("#panel-disabled")).to_be_visible()
    await expect(other.locator("#connect")).to_be_hidden()
    await other.context.close()

    # During an incident (the platform kill switch) nobody is offered Connect.
    await _kill_switch(p, on=True)
    page = await _open(browser, p, TENANT)
    await expect(page.locator("#panel-killed")).to_be_visible()
    await expect(page.locator("#connect")).to_be_hidden()
    await _kill_switch(p, on=False)

    # 1. Settings → Integrations, Connect visible for the enabled tenant.
    await page.reload()
    await expect(page.locator("#who")).to_contain_text("tenant acme")
    await expect(page.locator("#panel-state")).to_have_text("Not connected")
    await expect(page.locator("#connect")).to_be_visible()
    await expect(page.locator("#panel-killed")).to_be_hidden()
    await expect(page.locator("#panel-disabled")).to_be_hidden()
    await page.screenshot(path=str(shots / "1-settings-connect.png"))

    # 2. Intuit's consent screen (the emulator's), with the scope list.
    await _faults(p, "PUT", {"latency_ms": 1500})  # a backfill slow enough to be watched
    await page.click("#connect")
    await page.wait_for_url(f"{p.emulator.url}/**")
    await expect(page.locator("select#realm_id")).to_be_visible()
    assert "com.intuit.quickbooks.accounting" in await page.content()
    await page.screenshot(path=str(shots / "2-consent.png"))
    await page.select_option("select#realm_id", label="Acme Widgets LLC (4620816365000001)")
    await page.click("button.connect")

    # 3. Back on the dashboard: the initial sync in progress.
    await page.wait_for_url(f"{p.stack.gateway_url}/dashboard/?qbo=connected")
    await expect(page.locator("#notice")).to_contain_text("QuickBooks Online is connected")
    await expect(page.locator("#panel-state")).to_have_text("Connected")
    await expect(page.locator("#panel-company")).to_have_text("Acme Widgets LLC (" + REALM_ID + ")")
    await expect(page.locator("#sync-card")).to_be_visible(timeout=20_000)
    await expect(page.locator("#sync-company")).to_have_text("Acme Widgets LLC")
    await page.screenshot(path=str(shots / "3-initial-sync.png"))
    await _faults(p, "DELETE")

    # 4. The placement preview: every staged candidate; one excluded.
    await expect(page.locator("#preview-card")).to_be_visible(timeout=30_000)
    await expect(page.locator("#sync-card")).to_be_hidden()
    await expect(page.locator("#panel-last-sync")).to_contain_text(" UTC")  # the backfill's end
    rows = page.locator("#preview-table tbody tr")
    count = await rows.count()
    assert count >= 3
    excluded = await rows.nth(0).get_attribute("data-invoice")
    await rows.nth(0).locator("button.exclude").click()
    await expect(page.locator(f'tr[data-invoice="{excluded}"]')).to_have_class("excluded")
    await expect(page.locator("#preview-totals")).to_contain_text("1 excluded")
    await page.screenshot(path=str(shots / "4-placement-preview.png"), full_page=True)
    await page.click("#confirm")
    await expect(page.locator("#notice")).to_contain_text(f"{count - 1} placements confirmed")
    await expect(page.locator("#preview-card")).to_be_hidden()
    placed = (
        await p.matching.ListPlacements(mpb.ListPlacementsRequest(tenant_id=TENANT))
    ).placements
    assert len(placed) == count - 1
    assert excluded not in {x.invoice_id for x in placed}

    # 5. A payment recorded in QuickBooks closes a placement as paid out-of-band.
    target = placed[0]
    await _pay_in_books(p, target)
    paid = await p.status_becomes(
        target.invoice_id, mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND, within=30
    )
    await page.click("header nav button[data-view=placements]")
    await page.select_option("#filter-status", "resolved_out_of_band")
    await page.select_option("#filter-reason", "paid out-of-band")
    await page.click("#filter-apply")
    card = page.locator(f'article.placement[data-placement="{paid.placement_id}"]')
    await expect(card.locator(".badge")).to_have_text("Closed — paid out-of-band")
    await expect(card.locator(".timeline")).to_contain_text("placement.resolved_out_of_band")
    await expect(page.locator("article.placement")).to_have_count(1)
    await page.screenshot(path=str(shots / "5-paid-out-of-band.png"), full_page=True)

    # 6. The disconnect confirmation: what continues, and the choice to stop outreach.
    await page.click("header nav button[data-view=settings]")
    await page.click("#disconnect")
    dialog = page.locator("#disconnect-dialog")
    await expect(dialog).to_be_visible()
    active = count - 2
    await expect(page.locator("#dc-continuing")).to_contain_text(
        f"{active} active placements", timeout=10_000
    )
    await expect(dialog).to_contain_text("Active placements continue")
    await page.check("#dc-stop-outreach")
    await page.screenshot(path=str(shots / "6-disconnect-dialog.png"))
    await page.click("#dc-confirm")
    await expect(page.locator("#panel-state")).to_have_text("Disconnected")
    await expect(page.locator("#notice")).to_contain_text("All outreach is paused")
    await expect(page.locator("#connect")).to_be_visible()
    status = await p.stack.deps.connections.status(TENANT)
    assert status.state == "disconnected"
    # The box was ticked: one tenant-wide pause, by the person who disconnected.
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{p.stack.gateway_url}/v1/outreach/pauses",
            headers={"Authorization": p.stack.bearer(TENANT)},
        ) as resp,
    ):
        (pause,) = (await resp.json())["pauses"]
    assert pause["target"] == {"all_placements": True}
    assert pause["paused_by"] == "jane@acme.test"

    # Reports: the last ended day's report, as JSON and CSV, on the page and by URL.
    day = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    async with internal_channel(p.stack.matcher_addr, INTERNAL_TOKEN) as channel:
        await agrpc.MatchingAdminServiceStub(channel).RegenerateDailyReport(
            apb.RegenerateDailyReportRequest(
                tenant_id=TENANT, day=day, actor="support", reason="walkthrough"
            )
        )
    await page.click("header nav button[data-view=reports]")
    row = page.locator("#reports-table tbody tr").first
    await expect(row).to_contain_text(day)
    await row.locator("button", has_text="View").click()
    await expect(page.locator("#report-json")).to_contain_text(f'"day": "{day}"')
    async with page.expect_download() as info:
        await row.locator("button", has_text="Download CSV").click()
    download = await info.value
    assert download.suggested_filename == f"reconciliation-{day}-v1.csv"
    headers = {"Authorization": p.stack.bearer(TENANT)}
    base = f"{p.stack.gateway_url}/v1/reconciliation-reports/{day}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base, headers=headers) as resp:
            report = await resp.json()
            assert resp.status == 200
            assert report["key"] == {"tenant_id": TENANT, "day": day, "version": 1}
        async with http.get(f"{base}.csv", headers=headers) as resp:
            assert resp.status == 200
            assert resp.content_type == "text/csv"
            assert list(csv.reader(io.StringIO(await resp.text())))
    await page.context.close()
