"""How the backfill reads the contacts of overdue invoices: in pages of 1,000 when that
takes fewer calls than ``IDs`` lists of 40, by ``IDs`` otherwise, and by ``IDs`` for any
contact the pages missed. The tenant's intake mode is mostly ``automatic`` (a
confirmation done before), so the backfill places the invoices with the contacts it read:
each placement's debtor shows what was read. A backfill that stages candidates
(``preview``, ``confirm_each_time``) reads no contact ahead; one over placed invoices
still reads theirs. Calls are counted by the emulator (``state.api_paths``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.models import PlacementCandidate, PlacementIntake
from services.integration.sync import state
from tests.conftest import Emulator
from tests.helpers.xero_books import (
    TENANT,
    Books,
    all_placements,
    backfilled,
    contact_id_of,
    contact_reads,
    invoice_id_of,
)
from tests.services.integration.providers.xero.conftest import Xero
from tests.stack import confirm_first_backfill

LAST_ID = "ffffffff-ffff-4fff-bfff-ffffffffffff"  # sorts after every other InvoiceID


def _contact_pages_seen(xero: Xero, tenant_id: str) -> list[str]:
    return [
        query.get("page", "")
        for tenant, resource, query in list(xero.state.api_log)
        if tenant == tenant_id and resource == "Contacts" and "page" in query
    ]


def _emails(placements: dict[str, mpb.Placement]) -> dict[str, str]:
    return {invoice_id: p.debtor.email for invoice_id, p in placements.items()}


async def test_many_contacts_are_read_in_pages_of_a_thousand(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    # 2,100 debtors with an overdue invoice each: 53 IDs lists of 40, or 3 pages.
    def fill(books: Books) -> None:
        for n in range(2100):
            books.debtor(n)

    async with backfilled(engine, emulator, xero, fill) as (_, reads, placements, _):
        assert reads == {"Contacts?page": 3}, reads
        assert len(placements) == 2100
        assert all(
            p.debtor.email == f"debtor{int(p.invoice_id[-12:])}@debtor.test"
            for p in placements.values()
        )


async def test_few_contacts_are_read_by_ids(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    # 30 debtors: one IDs list, whatever the size of the organisation.
    def fill(books: Books) -> None:
        for n in range(1500):
            books.debtor(n, with_invoice=n < 30)

    async with backfilled(engine, emulator, xero, fill) as (_, reads, placements, _):
        assert reads == {"Contacts?IDs": 1}, reads
        assert set(_emails(placements).values()) == {f"debtor{n}@debtor.test" for n in range(30)}


async def test_a_large_organisation_with_some_debtors_is_read_by_ids_after_one_page(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    # 5,000 contacts (5 pages); 120 debtors among the newest (3 IDs lists): page 1 tells
    # the page count and holds none of them, so IDs lists are cheaper than 4 more pages.
    def fill(books: Books) -> None:
        for n in range(5000):
            books.debtor(n, with_invoice=n >= 4880)

    async with backfilled(engine, emulator, xero, fill) as (_, reads, placements, _):
        assert reads == {"Contacts?page": 1, "Contacts?IDs": 3}, reads
        assert len(placements) == 120
        assert all(p.debtor.email.startswith("debtor") for p in placements.values())


async def test_a_contact_created_or_changed_between_pages_is_still_read(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """Pages go by ``UpdatedDateUTC``. After page 1 is read, contact 0 (on it) and contact
    1500 (on page 2) are edited: both move to the last page, and contact 1000, the first
    row of page 2, slides onto page 1, already read. After the last page, a contact is
    created with an overdue invoice. Contact 1500 is read with its new details; contact
    1000 and the new one, in no page read, are read by IDs."""

    def fill(books: Books) -> None:
        for n in range(2100):
            books.debtor(n)

    async def during(books: Books) -> AsyncIterator[None]:
        # Slow Xero down so the bookkeeper's edits land between our page reads.
        xero.state.faults.faults.latency_ms = 300
        while "1" not in _contact_pages_seen(xero, books.tenant_id):
            await asyncio.sleep(0.005)
            yield
        for n in (0, 1500):
            edited = books.org.contacts[contact_id_of(n)]
            edited.email = f"new-address{n}@debtor.test"
            edited.updated = books.org.stamp()
        while "3" not in _contact_pages_seen(xero, books.tenant_id):
            await asyncio.sleep(0.005)
            yield
        late = books.debtor(9999, with_invoice=False)
        books.invoice(late, LAST_ID)  # on the last invoice page, read after this
        xero.state.faults.faults.latency_ms = 0

    async with backfilled(engine, emulator, xero, fill, during=during) as (_, reads, placed, _):
        assert reads == {"Contacts?page": 3, "Contacts?IDs": 2}, reads
        emails = _emails(placed)
        assert len(placed) == 2101
        assert emails[invoice_id_of(1500)] == "new-address1500@debtor.test"
        assert emails[invoice_id_of(1000)] == "debtor1000@debtor.test"
        assert emails[LAST_ID] == "debtor9999@debtor.test"
        # Contact 0 was read (page 1) and used before its edit, as a read by IDs would.
        assert emails[invoice_id_of(0)] == "debtor0@debtor.test"
        assert all(email for email in emails.values())


async def test_a_backfill_that_stages_candidates_reads_no_contact(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    # A new tenant (preview): the 2,100 overdue invoices become candidates, which carry
    # the invoice's contact name but need no contact read (3 pages before, here 0).
    def fill(books: Books) -> None:
        for n in range(2100):
            books.debtor(n)

    async with backfilled(engine, emulator, xero, fill, mode="preview") as (_, reads, placed, s):
        assert reads == {}, reads
        assert placed == {}
        async with s.deps.sessions() as session:
            staged = await session.scalar(
                select(func.count())
                .select_from(PlacementCandidate)
                .where(PlacementCandidate.tenant_id == TENANT)
            )
        assert staged == 2100


async def test_a_backfill_over_placed_invoices_still_reads_and_updates_their_contacts(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """Placed by a first backfill; the tenant then chooses ``confirm_each_time`` (new
    invoices wait for a confirmation). The bookkeeper changes a contact's address (no
    webhook, no poll yet), and a full backfill runs again: it reads no contact ahead, but
    the placed invoices' contacts are read when their placements are updated, and the
    placement shows the new address."""

    def fill(books: Books) -> None:
        for n in range(3):
            books.debtor(n)

    async with backfilled(engine, emulator, xero, fill) as (books, before, placed, stack):
        assert before == {"Contacts?IDs": 1}, before
        assert len(placed) == 3
        async with stack.deps.sessions.begin() as session:
            await session.execute(
                update(PlacementIntake)
                .where(PlacementIntake.tenant_id == TENANT)
                .values(mode="confirm_each_time")
            )
        edited = books.org.contacts[contact_id_of(1)]
        edited.email = "moved@debtor.test"
        edited.updated = books.org.stamp()
        requested, row = await state.request_backfill(
            stack.deps.sessions, TENANT, books.tenant_id, actor="support", reason="test"
        )
        assert requested
        run_id = row.backfill_run_id
        deadline = time.monotonic() + 60
        while True:
            async with stack.deps.sessions() as session:
                now = await state.load(session, TENANT, books.tenant_id)
            assert now is not None
            assert now.backfill_run_id == run_id
            if now.backfill_phase == state.COMPLETED:
                break
            assert time.monotonic() < deadline, "the second backfill did not finish"
            await asyncio.sleep(0.1)
        assert contact_reads(xero, books.tenant_id) == {"Contacts?IDs": 2}
        emails = _emails(await all_placements(stack))
        assert emails[invoice_id_of(1)] == "moved@debtor.test"
        assert emails[invoice_id_of(0)] == "debtor0@debtor.test"


async def test_a_confirmation_chooses_pages_once_for_all_its_contacts(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """15,000 contacts (15 pages); 1,000 of them, every 15th, owe an overdue invoice. The
    confirmation places the 1,000 candidates 500 at a time. Each batch alone needs 13
    ``IDs`` lists at most, fewer than the 14 pages after page 1, so batch by batch they
    were read by ids (page 1, then 24 lists); the run as a whole needs 25 lists, so it
    reads the 15 pages once and every batch finds its contacts there."""

    def fill(books: Books) -> None:
        for n in range(15_000):
            books.debtor(n, with_invoice=n % 15 == 0)

    # Our budget above Xero's 60 a minute (the emulator's limit still holds): the
    # confirmation's 40 calls are not spread over the minute, so the test is quick.
    faster = {"AICOLLECT_XERO_REQUESTS_PER_MINUTE": "600"}
    async with backfilled(engine, emulator, xero, fill, mode="preview", extra=faster) as (
        books,
        staged,
        _,
        stack,
    ):
        assert staged == {}  # the preview backfill read no contact
        done = await confirm_first_backfill(stack, TENANT, provider="xero")
        assert done["confirmation"]["state"] == "CONFIRMATION_STATE_CONFIRMED"
        assert contact_reads(xero, books.tenant_id) == {"Contacts?page": 15}
        placements = await all_placements(stack)
        assert len(placements) == 1000
        assert all(
            p.debtor.email == f"debtor{int(p.invoice_id[-12:])}@debtor.test"
            for p in placements.values()
        )
