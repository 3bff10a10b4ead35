"""A creditor's whole journey on the reference dashboard page (gateway/dashboard_page/), in
headless Chromium (Debian's package) driven by Playwright, through `aicollect run`'s real
processes (tests/helpers/journey.py): the gateway in local mode, the integration service
with its workers, the matcher, and the Intuit emulator with its consent page and signed
webhooks, on the test's PostgreSQL database.

In order: Settings (Connect only for an enabled tenant, none during an incident), consent,
the initial sync in progress, the placement preview (one candidate excluded, then
confirmed), a placement's outreach paused from its card (PAUSE on the outreach stream), a
payment recorded in QuickBooks during the pause resolving it (STOP, and no RESUME when its
pause is then resumed), all outreach stopped and resumed from Settings (PAUSE, RESUME for
the others), a credit memo applied to the wrong invoice closing another placement and
support restoring it over gRPC as docs/restore-procedure.md says (RESUME; the page shows it
active), the disconnect with "stop all outreach" ticked (a tenant-wide pause), and the
day's reconciliation report as JSON and CSV with the day's resolution in it. With
``AICOLLECT_SAVE_SCREENSHOTS=1`` the six screenshots of the product page's TODO list are
written to ``docs/screenshots/`` (docs/creditor-walkthrough.md).

The day's report: a day's report is made once the day has ended in the tenant's time zone.
The matcher's own scheduler (``ReportScheduler``, services/matcher/daily_reports.py) is run
once against the stack's database with its clock just past the tenant's midnight (and the
grace period), which is what the matcher process does at that hour: the report is built by
the same code from the rows the journey left, and the gateway serves it from there.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Dialog, Page, ViewportSize, expect

from aicollect.db.engine import make_engine, make_sessionmaker
from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.matcher.daily_reports import ReportSchedule, ReportScheduler
from tests.conftest import REALM_ID
from tests.e2e.pipeline import TENANT
from tests.helpers.grpcurl import grpcurl
from tests.helpers.journey import COMPANY, Journey, running_journey

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
VIEWPORT: ViewportSize = {"width": 1280, "height": 860}
STOP, PAUSE, RESUME = (
    mpb.OUTREACH_EVENT_TYPE_STOP,
    mpb.OUTREACH_EVENT_TYPE_PAUSE,
    mpb.OUTREACH_EVENT_TYPE_RESUME,
)


@pytest_asyncio.fixture
async def journey(database_url: str) -> AsyncIterator[Journey]:
    async with running_journey(database_url) as running:
        yield running


def _shots(tmp_path: Path) -> Path:
    if os.environ.get("AICOLLECT_SAVE_SCREENSHOTS") == "1":
        SHOTS.mkdir(parents=True, exist_ok=True)
        return SHOTS
    return tmp_path


async def _open(chromium: Browser, j: Journey, tenant: str) -> Page:
    context = await chromium.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = await context.new_page()
    await page.goto(f"{j.gateway_url}/dashboard/#token={j.bearer(tenant)}")
    return page


def _amount(placement: mpb.Placement) -> str:
    minor = placement.balance.minor_units
    return f"{minor // 100}.{minor % 100:02d}"


async def _pay_in_books(j: Journey, placement: mpb.Placement) -> None:
    """The bookkeeper records the debtor's check against the invoice in QuickBooks."""
    amount = _amount(placement)
    await j.control(
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


async def _wrong_credit_memo(j: Journey, placement: mpb.Placement) -> None:
    """The bookkeeper applies a credit memo to the wrong invoice, clearing its balance."""
    amount = _amount(placement)
    memo = await j.control(
        "POST", "credit-memos", {"customer_id": placement.customer_id, "amount": amount}
    )
    await j.control(
        "POST",
        f"credit-memos/{memo['CreditMemo']['Id']}/apply",
        {"invoice_id": placement.invoice_id, "amount": amount},
    )


async def _event(j: Journey, placement_id: str, kind: int, count: int = 1) -> None:
    async def seen() -> bool:
        return j.events_for(placement_id).count(kind) >= count

    await j.until(seen, within=30, what=f"outreach event {kind} for {placement_id}")


async def _show_placements(page: Page, status: str = "", reason: str = "") -> None:
    await page.click("header nav button[data-view=placements]")
    await page.select_option("#filter-status", status)
    await page.select_option("#filter-reason", reason)
    await page.click("#filter-apply")


async def test_a_creditor_walks_the_whole_journey(
    journey: Journey, browser: Browser, tmp_path: Path
) -> None:
    j, shots = journey, _shots(tmp_path)

    # A tenant whose flag is off sees the panel without a Connect button.
    other = await _open(browser, j, "globex")
    await expect(other.locator("#qbo-panel .panel-state")).to_have_text("Not connected")
    await expect(other.locator("#qbo-panel .panel-disabled")).to_be_visible()
    await expect(other.locator("#qbo-panel .connect")).to_be_hidden()
    await other.context.close()

    # During an incident (the platform kill switch) nobody is offered Connect.
    await j.kill_switch(on=True)
    page = await _open(browser, j, TENANT)
    await expect(page.locator("#qbo-panel .panel-killed")).to_be_visible()
    await expect(page.locator("#qbo-panel .connect")).to_be_hidden()
    await j.kill_switch(on=False)
    # Every reason the page asks for (window.prompt) is typed in by the creditor.
    reasons: list[str] = []

    async def answer(dialog: Dialog) -> None:
        await dialog.accept(reasons.pop(0))

    page.on("dialog", answer)

    # 1. Settings → Integrations, Connect visible for the enabled tenant.
    await page.reload()
    await expect(page.locator("#who")).to_contain_text("tenant acme")
    await expect(page.locator("#qbo-panel .panel-state")).to_have_text("Not connected")
    await expect(page.locator("#qbo-panel .connect")).to_be_visible()
    await expect(page.locator("#qbo-panel .panel-killed")).to_be_hidden()
    await expect(page.locator("#qbo-panel .panel-disabled")).to_be_hidden()
    await expect(page.locator("#outreach-state")).to_contain_text("Outreach is running")
    await page.screenshot(path=str(shots / "1-settings-connect.png"))

    # 2. Intuit's consent screen (the emulator's), with the scope list.
    await j.emulator("PUT", "faults", {"latency_ms": 1500})  # a backfill slow enough to watch
    await page.click("#qbo-panel .connect")
    await page.wait_for_url(f"{j.emulator_url}/**")
    await expect(page.locator("select#realm_id")).to_be_visible()
    assert "com.intuit.quickbooks.accounting" in await page.content()
    await page.screenshot(path=str(shots / "2-consent.png"))
    await page.select_option("select#realm_id", label=f"{COMPANY} ({REALM_ID})")
    await page.click("button.connect")

    # 3. Back on the dashboard: the initial sync in progress.
    await page.wait_for_url(f"{j.gateway_url}/dashboard/?qbo=connected")
    await expect(page.locator("#notice")).to_contain_text("QuickBooks Online is connected")
    await expect(page.locator("#qbo-panel .panel-state")).to_have_text("Connected")
    await expect(page.locator("#qbo-panel .panel-company")).to_have_text(f"{COMPANY} ({REALM_ID})")
    await expect(page.locator("#sync-card")).to_be_visible(timeout=20_000)
    await expect(page.locator("#sync-company")).to_have_text(COMPANY)
    await page.screenshot(path=str(shots / "3-initial-sync.png"))
    await j.emulator("DELETE", "faults")

    # 4. The placement preview: every staged candidate; one excluded, then confirmed.
    await expect(page.locator("#preview-card")).to_be_visible(timeout=60_000)
    await expect(page.locator("#sync-card")).to_be_hidden()
    # The backfill's end is the last sync.
    await expect(page.locator("#qbo-panel .panel-last-sync")).to_contain_text(" UTC")
    rows = page.locator("#preview-table tbody tr")
    count = await rows.count()
    assert count >= 4
    excluded = await rows.nth(0).get_attribute("data-invoice")
    await rows.nth(0).locator("button.exclude").click()
    await expect(page.locator(f'tr[data-invoice="{excluded}"]')).to_have_class("excluded")
    await expect(page.locator("#preview-totals")).to_contain_text("1 excluded")
    await page.screenshot(path=str(shots / "4-placement-preview.png"), full_page=True)
    await page.click("#confirm")
    await expect(page.locator("#notice")).to_contain_text(f"{count - 1} placements confirmed")
    await expect(page.locator("#preview-card")).to_be_hidden()
    placed = (
        await j.matching.ListPlacements(mpb.ListPlacementsRequest(tenant_id=TENANT))
    ).placements
    assert len(placed) == count - 1
    assert excluded not in {x.invoice_id for x in placed}
    # Outreach starts on what was confirmed: active, not paused; the excluded invoice is
    # no placement, so outreach never hears of it.
    assert {(x.status, x.outreach_paused) for x in placed} == {(mpb.PLACEMENT_STATUS_ACTIVE, False)}
    paid, restored = placed[0], placed[1]
    others = {x.placement_id for x in placed} - {paid.placement_id}

    # 5. The creditor pauses one placement from its card: PAUSE on the outreach stream.
    await _show_placements(page)
    card = page.locator(f'article.placement[data-placement="{paid.placement_id}"]')
    reasons.append("the debtor says the check is in the mail")
    await card.locator("button.pause-placement").click()
    await expect(card.locator(".badge.paused")).to_have_text("Outreach paused (this placement)")
    await expect(card.locator("button.resume-placement")).to_be_visible()
    await _event(j, paid.placement_id, PAUSE)
    # The check arrives: the bookkeeper records it, the placement is paid out-of-band (STOP).
    await _pay_in_books(j, paid)
    resolved = await j.status_becomes(
        paid.invoice_id, mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND, within=60
    )
    # The day of the report that holds it (UTC, the default zone), even if the journey runs
    # past midnight.
    paid_day = resolved.resolve_time.ToDatetime(tzinfo=UTC).date()
    await _event(j, paid.placement_id, STOP)
    await _show_placements(page, "resolved_out_of_band", "paid out-of-band")
    await expect(card.locator(".badge").first).to_have_text("Closed — paid out-of-band")
    await expect(card.locator(".timeline")).to_contain_text("outreach.paused")
    await expect(card.locator(".timeline")).to_contain_text("placement.resolved_out_of_band")
    await expect(page.locator("article.placement")).to_have_count(1)
    await page.screenshot(path=str(shots / "5-paid-out-of-band.png"), full_page=True)
    # Its pause ends; a paid debtor is never dunned again (no RESUME, checked below).
    reasons.append("paid, nothing left to pause")
    await card.locator("button.resume-placement").click()
    await expect(page.locator("#notice")).to_contain_text("Outreach resumed (0 placements)")
    await expect(card.locator("button.resume-placement")).to_have_count(0)

    # 6. Stop all outreach from Settings, then resume it: PAUSE then RESUME for the others.
    await page.click("header nav button[data-view=settings]")
    reasons.append("checking the ledger before outreach goes on")
    await page.click("#stop-outreach")
    await expect(page.locator("#outreach-state")).to_contain_text("All outreach is paused")
    await expect(page.locator("#resume-outreach")).to_be_visible()
    for placement_id in others:
        await _event(j, placement_id, PAUSE)
    await _show_placements(page, "active")
    card = page.locator(f'article.placement[data-placement="{restored.placement_id}"]')
    await expect(card.locator(".badge.paused")).to_have_text("Outreach paused (all outreach)")
    await expect(card.locator("button.pause-placement")).to_be_visible()  # no own pause
    await page.click("header nav button[data-view=settings]")
    reasons.append("ledger checked")
    await page.click("#resume-outreach")
    await expect(page.locator("#outreach-state")).to_contain_text("Outreach is running")
    for placement_id in others:
        await _event(j, placement_id, RESUME)
    assert j.events_for(paid.placement_id) == [PAUSE, STOP]

    # 7. A credit memo applied to the wrong invoice closes another placement (STOP); the
    # creditor confirms it was a mistake and support restores it over gRPC (RESUME).
    await _wrong_credit_memo(j, restored)
    await j.status_becomes(restored.invoice_id, mpb.PLACEMENT_STATUS_CLOSED, within=60)
    await _event(j, restored.placement_id, STOP)
    await j.webhooks_drained()
    (closed,) = (
        await grpcurl(
            j.stack.matcher_addr,
            "ListPlacements",
            {"tenant_id": TENANT, "invoice_id": restored.invoice_id},
            token=j.token,
        )
    )["placements"]
    assert closed["status"] == "PLACEMENT_STATUS_CLOSED"
    assert "credit memo" in closed["resolution_reason"]
    back = await grpcurl(
        j.stack.matcher_addr,
        "RestorePlacement",
        {
            "placement_id": restored.placement_id,
            "expected_version": closed["version"],
            "actor": "dana@support.ai-collect",
            "reason": "ticket 812: credit memo applied to the wrong invoice; still owed",
        },
        token=j.token,
    )
    assert back["placement"]["status"] == "PLACEMENT_STATUS_ACTIVE"
    assert back["placement"]["balance"]["minor_units"] == str(restored.balance.minor_units)
    await _event(j, restored.placement_id, RESUME, count=2)
    assert j.events_for(restored.placement_id) == [PAUSE, RESUME, STOP, RESUME]
    await _show_placements(page, "active")
    card = page.locator(f'article.placement[data-placement="{restored.placement_id}"]')
    await expect(card.locator(".badge").first).to_have_text("Active")
    await expect(card.locator(".timeline")).to_contain_text("placement.restored")
    await expect(card.locator(".timeline")).to_contain_text("dana@support.ai-collect")
    await expect(card.locator(".badge.paused")).to_have_count(0)

    # 8. The disconnect confirmation: what continues, and the choice to stop outreach.
    await page.click("header nav button[data-view=settings]")
    await page.click("#qbo-panel .disconnect")
    dialog = page.locator("#disconnect-dialog")
    await expect(dialog).to_be_visible()
    await expect(page.locator("#dc-continuing")).to_contain_text(
        f"{count - 2} active placements", timeout=10_000
    )
    await expect(dialog).to_contain_text("Active placements continue")
    await page.check("#dc-stop-outreach")
    await page.screenshot(path=str(shots / "6-disconnect-dialog.png"))
    await page.click("#dc-confirm")
    await expect(page.locator("#qbo-panel .panel-state")).to_have_text("Disconnected")
    await expect(page.locator("#notice")).to_contain_text("All outreach is paused")
    await expect(page.locator("#outreach-state")).to_contain_text("All outreach is paused")
    await expect(page.locator("#qbo-panel .connect")).to_be_visible()
    panel = await j.gateway("GET", "/v1/integrations/qbo")
    assert panel["state"] == "CONNECTION_STATE_DISCONNECTED"
    # The box was ticked: one tenant-wide pause, by the person who disconnected.
    (pause,) = (await j.gateway("GET", "/v1/outreach/pauses"))["pauses"]
    assert pause["target"] == {"all_placements": True}
    assert pause["paused_by"] == "jane@acme.test"
    for placement_id in others:
        await _event(j, placement_id, PAUSE, count=2)
    assert j.events_for(paid.placement_id) == [PAUSE, STOP]

    # 9. The day ends (the tenant's zone is the default, UTC): the matcher's scheduler, at
    # its clock's first round after midnight and the grace period, makes the day's report.
    today = paid_day
    schedule = ReportSchedule()
    after_midnight = datetime.combine(today + timedelta(days=1), time(0), UTC) + schedule.grace
    engine = make_engine(j.stack.database_url)
    try:
        made = await ReportScheduler(
            make_sessionmaker(engine), schedule, clock=lambda: after_midnight
        ).run_once()
    finally:
        await engine.dispose()
    day = today.isoformat()
    assert made == [(TENANT, today)]
    await _report_of_the_day(j, page, day, paid)
    await page.context.close()


async def _report_of_the_day(j: Journey, page: Page, day: str, paid: mpb.Placement) -> None:
    """The day's report on the page (JSON, the CSV download) and by URL: the payment
    recorded during the pause is in it."""
    await page.click("header nav button[data-view=reports]")
    row = page.locator("#reports-table tbody tr").first
    await expect(row).to_contain_text(day)
    await row.locator("button", has_text="View").click()
    await expect(page.locator("#report-json")).to_contain_text(f'"day": "{day}"')
    await expect(page.locator("#report-json")).to_contain_text(paid.placement_id)
    async with page.expect_download() as info:
        await row.locator("button", has_text="Download CSV").click()
    download = await info.value
    assert download.suggested_filename == f"reconciliation-{day}-v1.csv"
    downloaded = await asyncio.to_thread(Path(await download.path()).read_bytes)

    report = await j.gateway("GET", f"/v1/reconciliation-reports/{day}")
    assert report["key"] == {"tenant_id": TENANT, "day": day, "version": 1}
    (usd,) = report["currencies"]
    (resolution,) = usd["out_of_band_resolutions"]
    assert resolution["placement_id"] == paid.placement_id
    assert resolution["invoice_id"] == paid.invoice_id
    assert resolution["amount_minor_units"] == str(paid.original_amount.minor_units)
    assert resolution["restored"] is False

    headers = {"Authorization": f"Bearer {j.bearer(TENANT)}"}
    url = f"{j.gateway_url}/v1/reconciliation-reports/{day}.csv"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        body = await resp.read()
    assert body == downloaded  # the page's download is the route's CSV, byte for byte
    text = body.decode()
    records = list(csv.DictReader(io.StringIO(text)))
    (line,) = [r for r in records if r["record"] == "out_of_band_resolution"]
    assert (line["day"], line["placement_id"], line["invoice_id"]) == (
        day,
        paid.placement_id,
        paid.invoice_id,
    )
    assert line["amount"] == _amount(paid)
