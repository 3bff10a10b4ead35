"""The backfill's pages of overdue invoices in Xero: one call a page (Xero pages by number,
so pages do not overlap), and no invoice missed when invoices leave the listing while
the backfill runs (voided or paid: the rows after them move back a place). The tenant is
new (intake mode ``preview``): the overdue invoices become candidates. Calls are counted
by the emulator (``state.api_paths``, ``state.api_log``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from services.integration.models import PlacementCandidate, SyncState
from services.integration.sync import state
from tests.conftest import Emulator
from tests.helpers.xero_books import TENANT, Books, backfilled, invoice_id_of
from tests.services.integration.providers.xero.conftest import Xero
from tests.stack import Stack

DEBTORS = 2500  # 3 pages of 1,000


def fill(books: Books) -> None:
    for n in range(DEBTORS):
        books.debtor(n)


async def _candidates(stack: Stack) -> set[str]:
    async with stack.deps.sessions() as session:
        ids = await session.scalars(
            select(PlacementCandidate.invoice_id).where(PlacementCandidate.tenant_id == TENANT)
        )
        return set(ids)


def _invoice_pages(xero: Xero, tenant_id: str) -> list[str]:
    """The page numbers of the backfill's invoice reads, in order."""
    return [
        query.get("page", "")
        for tenant, resource, query in list(xero.state.api_log)
        if tenant == tenant_id and resource == "Invoices" and "where" in query
    ]


def _void_once_read(
    xero: Xero, page: str, voided: list[str]
) -> Callable[[Books], AsyncIterator[None]]:
    """What the bookkeeper does during the backfill: once it has read invoice ``page``, the
    ``voided`` invoices are voided (Xero slowed down meanwhile so that the voids land between
    two of our page reads)."""

    async def during(books: Books) -> AsyncIterator[None]:
        xero.state.faults.faults.latency_ms = 300
        while page not in _invoice_pages(xero, books.tenant_id):
            await asyncio.sleep(0.005)
            yield
        for invoice_id in voided:
            books.org.void_invoice(invoice_id)
        xero.state.faults.faults.latency_ms = 0

    return during


async def test_each_page_of_invoices_is_one_call(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    async with backfilled(engine, emulator, xero, fill, mode="preview") as (books, _, _, stack):
        assert _invoice_pages(xero, books.tenant_id) == ["1", "2", "3"]
        assert await _candidates(stack) == {invoice_id_of(n) for n in range(DEBTORS)}


async def test_invoices_leaving_the_listing_mid_backfill_make_it_step_back_not_skip(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """After page 1 is read, the bookkeeper voids 30 of its invoices: the rest move back
    30 places, so the first 30 of page 2 as read before are now the last of page 1. Page
    2 shows fewer matching invoices (``itemCount``): the backfill keeps it and reads page
    1 again for those 30, then page 3. Every invoice still overdue is a candidate."""
    voided = [invoice_id_of(n) for n in range(30)]

    during = _void_once_read(xero, "1", voided)
    async with backfilled(engine, emulator, xero, fill, during=during, mode="preview") as (
        books,
        _,
        _,
        stack,
    ):
        still_overdue = {invoice_id_of(n) for n in range(30, DEBTORS)}
        assert not still_overdue - await _candidates(stack)  # none missed
        # Page 1, page 2 (the count dropped), page 1 again, page 3.
        assert _invoice_pages(xero, books.tenant_id) == ["1", "2", "1", "3"]


async def test_more_than_a_page_leaving_the_listing_makes_it_step_back_further(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """After page 2 is read (rows 1,001 to 2,000), 1,100 invoices of pages 1 and 2 are
    voided: page 3 shows the drop; page 2 again starts past the last invoice seen (more
    than a page moved back), so page 1; then on. Every invoice still overdue is a
    candidate."""
    voided = [invoice_id_of(n) for n in range(900, 2000)]

    during = _void_once_read(xero, "2", voided)
    async with backfilled(engine, emulator, xero, fill, during=during, mode="preview") as (
        books,
        _,
        _,
        stack,
    ):
        still_overdue = {invoice_id_of(n) for n in range(DEBTORS)} - set(voided)
        assert not still_overdue - await _candidates(stack)  # none missed
        # Pages 1, 2, 3 (the count dropped), 2 (starts past the last seen), 1, 2.
        assert _invoice_pages(xero, books.tenant_id) == ["1", "2", "3", "2", "1", "2"]


async def test_a_resumed_backfill_reads_again_from_the_page_of_the_last_invoice_seen(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> None:
    """A run that failed after row 1,980 (a checkpoint of the row-by-row paging, as an
    older version wrote it: 1,981 is inside page 2) resumes with page 2, which holds the
    last invoice it saw, so the invoices after it cannot have moved out of reach; then
    page 3."""
    async with backfilled(engine, emulator, xero, fill, mode="preview") as (books, _, _, stack):
        first_run = len(_invoice_pages(xero, books.tenant_id))
        async with stack.deps.sessions.begin() as session:
            await session.execute(
                update(SyncState)
                .where(SyncState.tenant_id == TENANT, SyncState.realm_id == books.tenant_id)
                .values(
                    backfill_phase=state.FAILED,
                    backfill_run_id="resumed",
                    backfill_next_position=1981,
                    backfill_last_invoice_id=invoice_id_of(1979),
                    backfill_next_attempt_at=datetime.now(UTC),
                )
            )
        deadline = time.monotonic() + 60
        while True:
            async with stack.deps.sessions() as session:
                row = await state.load(session, TENANT, books.tenant_id)
            assert row is not None
            if row.backfill_phase == state.COMPLETED:
                break
            assert time.monotonic() < deadline, "the resumed backfill did not finish"
            await asyncio.sleep(0.1)
        assert row.backfill_run_id == "resumed"
        assert _invoice_pages(xero, books.tenant_id)[first_run:] == ["2", "3"]
        assert await _candidates(stack) == {invoice_id_of(n) for n in range(DEBTORS)}
