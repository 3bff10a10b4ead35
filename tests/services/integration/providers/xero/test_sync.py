"""Xero's sync end to end: the backfill of overdue receivables in the organisation's time
zone, a webhook re-reading the invoice into the matcher, the safety-net poll finding a
deleted payment no webhook announced, and every read inside Xero's limits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.errors import Unavailable
from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.budget import Priority
from services.integration.sync import state
from services.integration.sync.cdc import stretched_reread
from services.integration.sync.pacing import poll_interval, stretched, used_in
from tests.conftest import Emulator
from tests.services.integration.providers.xero.conftest import Xero, connect
from tests.services.integration.providers.xero.pipeline import (
    TENANT,
    XeroPipeline,
    running_pipeline,
)
from tests.stack import Stack, full_stack

# For the tests that wait for polls but are not about pacing: Xero's 60 requests a minute
# spread a safety-net poll over several seconds.
FASTER_POLLS = pytest.mark.xero_minute_limit(600)

# (Xero's zone name, IANA) pairs, ahead of and behind UTC.
ZONES = (
    ("NEWZEALANDSTANDARDTIME", "Pacific/Auckland"),
    ("PACIFICSTANDARDTIME", "America/Los_Angeles"),
    ("GMTSTANDARDTIME", "Europe/London"),
)


def _zone_whose_today_differs() -> tuple[str, date, date]:
    """A zone whose date is not UTC's right now (the one case the zone changes the
    answer); (name, its today, UTC's today). Auckland from 11:00 UTC, Los Angeles before
    08:00 UTC; in between, London (the same date as UTC: the check then holds trivially)."""
    utc_today = datetime.now(UTC).date()
    for name, iana in ZONES:
        local = datetime.now(ZoneInfo(iana)).date()
        if local != utc_today:
            return name, local, utc_today
    return ZONES[2][0], utc_today, utc_today


async def test_backfill_places_the_overdue_receivables_of_the_organisations_today(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    zone, local_today, utc_today = _zone_whose_today_differs()
    expected: set[str] = set()
    not_placed: set[str] = set()

    async def books(p: XeroPipeline) -> None:
        ada = await p.contact("Ada Lopez", "ada@debtor.test")
        bo = await p.contact("Bo Chen", "bo@debtor.test")
        long_ago = (local_today - timedelta(days=40)).isoformat()
        expected.add(await p.invoice(ada, "500.00", long_ago, date="2026-01-01"))
        expected.add(await p.invoice(bo, "120.50", long_ago, date="2026-01-01"))
        # Due on the earlier of the two todays: overdue exactly when the organisation's
        # today is after it (the zone decides, not our server's clock).
        edge = min(local_today, utc_today)
        edge_id = await p.invoice(bo, "75.00", edge.isoformat(), date="2026-01-01")
        (expected if local_today > edge else not_placed).add(edge_id)
        not_placed.add(await p.invoice(ada, "60.00", (local_today + timedelta(days=5)).isoformat()))
        not_placed.add(await p.invoice(ada, "80.00", long_ago, status="DRAFT"))
        not_placed.add(await p.invoice(ada, "90.00", long_ago, type="ACCPAY"))
        paid = await p.invoice(bo, "30.00", long_ago)
        await p.pay(paid)
        not_placed.add(paid)

    async with running_pipeline(engine, emulator, xero, prepare=books, timezone=zone) as p:
        placements = await p.placements()
        assert set(placements) == expected
        assert not set(placements) & not_placed
        by_email = {pl.debtor.email for pl in placements.values()}
        assert by_email == {"ada@debtor.test", "bo@debtor.test"}
        stats = await p.stats()
        assert not any(stats.get("throttled", {}).values()), stats


async def test_a_webhook_re_reads_the_invoice_and_the_matcher_decides(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    ids: dict[str, str] = {}

    async def books(p: XeroPipeline) -> None:
        ada = await p.contact("Ada Lopez", "ada@debtor.test")
        ids["full"] = await p.invoice(ada, "500.00", "2026-06-30", date="2026-05-31")
        ids["part"] = await p.invoice(ada, "300.00", "2026-06-30", date="2026-05-31")

    async with running_pipeline(engine, emulator, xero, prepare=books) as p:
        assert set(await p.placements()) == set(ids.values())
        await p.pay(ids["full"])  # Xero: PAID, and an INVOICE UPDATE webhook
        await p.pay(ids["part"], "100.00")  # AUTHORISED with AmountDue 200.00
        paid = await p.status_becomes(ids["full"], mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
        assert paid.balance.minor_units == 0

        async def part_paid() -> bool:
            found = await p.placement(ids["part"])
            return found is not None and found.balance.minor_units == 20000

        await p.until(part_paid, what="the part payment reaching the placement")
        part = await p.placement(ids["part"])
        assert part is not None
        assert part.status == mpb.PLACEMENT_STATUS_ACTIVE


@FASTER_POLLS
async def test_the_poll_finds_a_deleted_payment_no_webhook_announced(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    ids: dict[str, str] = {}

    async def books(p: XeroPipeline) -> None:
        ada = await p.contact("Ada Lopez", "ada@debtor.test")
        ids["invoice"] = await p.invoice(ada, "500.00", "2026-06-30", date="2026-05-31")

    async with running_pipeline(
        engine, emulator, xero, prepare=books, AICOLLECT_CDC_INTERVAL_SECONDS="2"
    ) as p:
        payment = await p.pay(ids["invoice"])
        await p.status_becomes(ids["invoice"], mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
        # The other reading of an UNCONFIRMED behaviour: no webhook for payment changes.
        await xero.control("PATCH", "/settings", {"payment_webhooks": False})
        before = len((await xero.control("GET", "/deliveries"))["deliveries"])
        await p.books("DELETE", f"payments/{payment}")

        async def reopened() -> bool:
            found = await p.placement(ids["invoice"])
            return found is not None and found.status != mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND

        await p.until(reopened, within=45, what="the poll finding the deleted payment")
        found = await p.placement(ids["invoice"])
        assert found is not None
        # A paid debtor is never dunned on a guess: a reversal is held for a person.
        assert found.status in (
            mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW,
            mpb.PLACEMENT_STATUS_NEEDS_REVIEW,
            mpb.PLACEMENT_STATUS_ACTIVE,
        )
        assert len((await xero.control("GET", "/deliveries"))["deliveries"]) == before
        stats = await p.stats()
        assert not any(stats.get("throttled", {}).values()), stats


async def test_reads_stay_inside_the_organisations_concurrency_limit(
    stack: Stack, xero: Xero
) -> None:
    """Xero enforces 5 calls in flight per organisation (429 ``concurrent`` beyond); every
    read of ours waits for a slot of the organisation's shared budget instead."""
    org = await xero.organisation("Acme Ltd")
    await connect(stack, "acme", [org])
    await xero.control("PATCH", "/faults", {"latency_ms": 150})
    token = await stack.deps.tokens.access_token("acme")
    # Without the budget: ten at once straight at Xero, and Xero refuses some.
    async with aiohttp.ClientSession() as http:

        async def raw() -> int:
            async with http.get(
                f"{xero.base}/api.xro/2.0/Organisation",
                headers={"Authorization": f"Bearer {token.token}", "xero-tenant-id": org},
            ) as resp:
                return resp.status

        statuses = await asyncio.gather(*(raw() for _ in range(10)))
    assert 429 in statuses
    before = dict((await xero.control("GET", "/stats")).get("throttled", {}))
    reader = stack.deps.syncs["xero"].reader("acme", org, Priority.WEBHOOK)
    started = time.monotonic()
    times = await asyncio.gather(*(reader.company_time() for _ in range(25)))
    elapsed = time.monotonic() - started
    assert len(times) == 25
    after = dict((await xero.control("GET", "/stats")).get("throttled", {}))
    assert after == before  # not one 429
    assert elapsed >= 25 / 5 * 0.15 * 0.9  # five at a time, never more


@FASTER_POLLS
async def test_the_periodic_re_read_finds_an_edit_that_keeps_updated_date_utc(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """Xero: a due date moved on a part-paid invoice keeps its UpdatedDateUTC, so neither
    a webhook (dropped here) nor If-Modified-Since shows it; the re-read of placed
    invoices does."""
    ids: dict[str, str] = {}

    async def books(p: XeroPipeline) -> None:
        ada = await p.contact("Ada Lopez", "ada@debtor.test")
        ids["invoice"] = await p.invoice(ada, "500.00", "2026-06-30", date="2026-05-31")

    async with running_pipeline(
        engine,
        emulator,
        xero,
        prepare=books,
        AICOLLECT_CDC_INTERVAL_SECONDS="1",
        AICOLLECT_XERO_PLACED_REREAD_SECONDS="2",
    ) as p:
        await p.pay(ids["invoice"], "100.00")

        async def part_paid() -> bool:
            found = await p.placement(ids["invoice"])
            return found is not None and found.balance.minor_units == 40000

        await p.until(part_paid, what="the part payment")
        before = (await p.books("GET", f"invoices/{ids['invoice']}"))["Invoices"][0]
        await xero.control("PATCH", "/faults", {"webhook_drop_rate": 1.0})
        await p.books("PATCH", f"invoices/{ids['invoice']}", {"due_date": "2026-07-15"})
        after = (await p.books("GET", f"invoices/{ids['invoice']}"))["Invoices"][0]
        assert after["UpdatedDateUTC"] == before["UpdatedDateUTC"]  # Xero's caveat

        async def moved() -> bool:
            found = await p.placement(ids["invoice"])
            return found is not None and found.due_date == "2026-07-15"

        await p.until(moved, within=45, what="the re-read bringing the new due date")


def test_the_re_read_of_placed_invoices_stays_within_a_fifth_of_the_day() -> None:
    six_hours = 6 * 3600.0
    assert stretched_reread(six_hours, 1_000, 40, 5000) == six_hours  # 25 calls a round
    # 30,000 placed: 750 calls a round; four rounds a day would be 3,000 of 5,000.
    assert stretched_reread(six_hours, 30_000, 40, 5000) == 18 * 3600.0
    assert stretched_reread(six_hours, 30_000, 40, 1000) == 90 * 3600.0  # Starter tier
    assert stretched_reread(six_hours, 30_000, 40, None) == six_hours  # no daily window
    assert stretched_reread(0.0, 30_000, 40, 5000) == 0.0  # a platform that never re-reads


def test_the_poll_interval_stretches_as_the_daily_budget_runs_low() -> None:
    assert stretched(900, 5000, 0) == 900
    assert stretched(900, 5000, 2500) == 1800  # half left: twice as long
    assert stretched(900, 5000, 4000) == 4500  # a fifth left: five times
    assert stretched(900, 5000, 5000) == 900 * 16  # nothing left: the longest stretch
    assert stretched(3600, 5000, 5000) == 6 * 3600  # never beyond six hours
    assert stretched(900, 0, 10) == 900  # no daily window


async def test_the_poll_interval_reads_the_days_use_from_the_shared_ledger(
    stack: Stack, xero: Xero
) -> None:
    org = await xero.organisation("Acme Ltd")
    await connect(stack, "acme", [org])
    sync = stack.deps.syncs["xero"]
    base = await poll_interval(sync, org, 900)
    assert base == 900
    reader = sync.reader("acme", org, Priority.CDC)
    for _ in range(3):
        await reader.company_time()
    assert await used_in(sync, org, 86_400) == 3
    # QBO has no daily window: its interval never stretches.
    assert await poll_interval(stack.deps.syncs["qbo"], org, 900) == 900


async def test_the_daily_budget_holds_reads_back_before_xero_refuses_them(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """Our daily budget equal to Xero's: the read past it waits for the window instead of
    earning a 429; a smaller limit at Xero than we know of (a Starter organisation) is a
    429 ``day`` that pauses the organisation and fails the call at once, not hours later."""
    org = await xero.organisation("Acme Ltd")
    env = {"AICOLLECT_XERO_REQUESTS_PER_DAY": "6"}
    async with full_stack(engine, emulator, xero_url=xero.base, extra=env) as stack:
        await connect(stack, "acme", [org])
        await xero.control("PATCH", "/faults", {"daily_limit": 6})
        reader = stack.deps.syncs["xero"].reader("acme", org, Priority.WEBHOOK)
        for _ in range(6):
            await reader.company_time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.company_time(), 1.5)
        assert not (await xero.control("GET", "/stats")).get("throttled")

        other = await xero.organisation("Starter Ltd")
        await connect(stack, "starter", [other])
        await xero.control("PATCH", "/faults", {"daily_limit": 2})
        small = stack.deps.syncs["xero"].reader("starter", other, Priority.WEBHOOK)
        for _ in range(2):
            await small.company_time()
        started = time.monotonic()
        with pytest.raises(Unavailable):
            await small.company_time()
        assert time.monotonic() - started < 10
        assert (await xero.control("GET", "/stats"))["throttled"] == {"day": 1}


async def test_the_apps_minute_budget_spans_every_organisation(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """Xero's app-wide minute limit (10,000; here 5 at both ends): reads for two
    organisations share it, and the read past it waits instead of earning a 429."""
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    env = {"AICOLLECT_XERO_APP_REQUESTS_PER_MINUTE": "5"}
    async with full_stack(engine, emulator, xero_url=xero.base, extra=env) as stack:
        await connect(stack, "north-co", [north])
        await connect(stack, "south-co", [south])
        # A fresh minute at Xero (the connects' /connections calls count there too).
        await xero.control("POST", "/clock", {"advance_seconds": 61})
        await xero.control("PATCH", "/faults", {"app_minute_limit": 5})
        sync = stack.deps.syncs["xero"]
        readers = [
            sync.reader("north-co", north, Priority.WEBHOOK),
            sync.reader("south-co", south, Priority.WEBHOOK),
        ]
        for n in range(5):
            await readers[n % 2].company_time()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(readers[1].company_time(), 1.5)
        assert not (await xero.control("GET", "/stats")).get("throttled")


async def test_the_first_backfill_reads_open_overpayments_and_prepayments(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """Money a contact paid before the connection and nobody allocated (an overpayment or a
    prepayment still ``AUTHORISED``): Xero sends no webhook for it and the poll only looks
    back from the connection, so the first backfill reads it. The invoice it covers is
    placed paused for review at the confirmation; the others active. The poll is an hour
    away here: only the backfill can have read that money."""
    due = (datetime.now(UTC).date() - timedelta(days=40)).isoformat()
    covered: set[str] = set()
    active: set[str] = set()
    credits: dict[str, str] = {}

    async def books(p: XeroPipeline) -> None:
        for kind, key in (("overpayments", "Overpayments"), ("prepayments", "Prepayments")):
            contact = await p.contact(f"Paid ahead by {kind}", f"{kind}@debtor.test")
            covered.add(await p.invoice(contact, "300.00", due, date="2026-01-01"))
            active.add(await p.invoice(contact, "900.00", due, date="2026-01-01"))
            made = await p.books("POST", kind, {"contact_id": contact, "amount": "300.00"})
            credits[kind] = str(made[key][0][f"{key[:-1]}ID"])
        # A voided overpayment, and one allocated in full elsewhere (PAID): no credit left.
        gone = await p.contact("Voided credit", "void@debtor.test")
        active.add(await p.invoice(gone, "200.00", due, date="2026-01-01"))
        made = await p.books("POST", "overpayments", {"contact_id": gone, "amount": "500.00"})
        await p.books("POST", f"overpayments/{made['Overpayments'][0]['OverpaymentID']}/void")
        spent = await p.contact("Spent credit", "spent@debtor.test")
        active.add(await p.invoice(spent, "100.00", due, date="2026-01-01"))
        other = await p.invoice(spent, "150.00", (datetime.now(UTC).date()).isoformat())
        made = await p.books("POST", "overpayments", {"contact_id": spent, "amount": "150.00"})
        overpayment = made["Overpayments"][0]["OverpaymentID"]
        await p.books("POST", f"overpayments/{overpayment}/allocations", {"invoice_id": other})

    async with running_pipeline(
        engine, emulator, xero, prepare=books, AICOLLECT_CDC_INTERVAL_SECONDS="3600"
    ) as p:
        placements = await p.placements()
        assert set(placements) == covered | active
        paused = {
            invoice
            for invoice, found in placements.items()
            if found.status == mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW
        }
        assert paused == covered
        assert all(placements[i].status == mpb.PLACEMENT_STATUS_ACTIVE for i in active), placements
        reasons = " ".join(placements[i].review_reason for i in covered)
        assert all(f"Xero payment {c}" in reasons for c in credits.values()), reasons
        assert all(placements[i].balance.minor_units == 30000 for i in covered)


@FASTER_POLLS
async def test_the_first_poll_does_not_read_again_every_invoice_the_backfill_just_placed(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """The periodic re-read of placed invoices (for edits that keep UpdatedDateUTC) counts
    the backfill, which has just read them, as its first round: the polls that follow
    within the period read only what changed, never every placed invoice again."""
    due = (datetime.now(UTC).date() - timedelta(days=40)).isoformat()

    async def books(p: XeroPipeline) -> None:
        ada = await p.contact("Ada Lopez", "ada@debtor.test")
        for n in range(3):
            await p.invoice(ada, f"{100 + n}.00", due, date="2026-01-01")

    async with running_pipeline(
        engine,
        emulator,
        xero,
        prepare=books,
        AICOLLECT_CDC_INTERVAL_SECONDS="1",
        AICOLLECT_XERO_PLACED_REREAD_SECONDS="3600",
    ) as p:
        assert len(await p.placements()) == 3
        async with engine.connect() as conn:
            start = (
                await conn.execute(
                    text(
                        "SELECT cdc_polls, placed_reread_at, backfill_finished_at "
                        "FROM integration.sync_states WHERE realm_id = :t"
                    ),
                    {"t": p.org},
                )
            ).one()
        assert start.placed_reread_at is not None
        assert start.placed_reread_at >= start.backfill_finished_at

        await _two_more_polls(p, engine, int(start.cdc_polls))
        after = await _sync_state(engine, p.org, "placed_reread_at")
        assert after == start.placed_reread_at  # no round of re-reads since the backfill


async def _sync_state(engine: AsyncEngine, org: str, column: str) -> Any:
    """One column of the organisation's sync state row, as it is now."""
    async with engine.connect() as conn:
        return await conn.scalar(
            text(f"SELECT {column} FROM integration.sync_states WHERE realm_id = :t"), {"t": org}
        )


async def _two_more_polls(p: XeroPipeline, engine: AsyncEngine, polls: int) -> None:
    """Until two safety-net polls have finished after the ``polls``-th."""

    async def polled_twice() -> bool:
        return int(await _sync_state(engine, p.org, "cdc_polls")) >= polls + 2

    await p.until(polled_twice, within=30, what="two polls")


@FASTER_POLLS
async def test_a_poll_while_a_backfill_runs_leaves_the_re_read_to_the_backfill(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """A poll that begins or ends while a backfill is under way (its placed invoices not
    yet marked as read) starts no round of re-reads: the backfill reads them and starts the
    period when it finishes. The poll decides from the company's row as it is then."""
    due = (datetime.now(UTC).date() - timedelta(days=40)).isoformat()

    async def books(p: XeroPipeline) -> None:
        ada = await p.contact("Ada Lopez", "ada@debtor.test")
        await p.invoice(ada, "100.00", due, date="2026-01-01")

    async with running_pipeline(
        engine,
        emulator,
        xero,
        prepare=books,
        AICOLLECT_CDC_INTERVAL_SECONDS="1",
        AICOLLECT_XERO_PLACED_REREAD_SECONDS="3600",
    ) as p:
        assert len(await p.placements()) == 1
        where = {"t": p.org}
        # A backfill under way (this test holds its lock, so it stays so), its invoices not
        # yet marked as read.
        async with state.realm_lock(engine, state.BACKFILL_LOCK, TENANT, p.org) as held:
            assert held
            async with engine.begin() as conn:
                polls = (
                    await conn.execute(
                        text(
                            "UPDATE integration.sync_states SET backfill_phase = 'running', "
                            "placed_reread_at = NULL WHERE realm_id = :t RETURNING cdc_polls"
                        ),
                        where,
                    )
                ).scalar_one()
            await _two_more_polls(p, engine, int(polls))
            reread_at = await _sync_state(engine, p.org, "placed_reread_at")
        assert reread_at is None  # no poll re-read what the backfill is reading
