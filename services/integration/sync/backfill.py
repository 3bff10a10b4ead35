"""The backfill: every overdue invoice of a realm, page by page, into placements.

``SELECT * FROM Invoice WHERE Balance > '0' AND DueDate < '<company today>' ORDERBY Id
STARTPOSITION n MAXRESULTS 1000``; the company's today comes from QBO's own time for the
company and stays fixed for the run, so paging is consistent. The placement rules are
applied to each page. A tenant in intake mode ``automatic`` has what they select placed
at once: the page's customers are read in batches (``Id IN (...)``) while the matcher
takes the previous page, and the placements sent to ``UpsertPlacements`` (one per invoice
however often it runs). In the other modes (``preview``, the first backfill's, and
``confirm_each_time``) what they select is staged as candidates, which need no customer:
no customer is read ahead, and an invoice already placed reads its own customer when its
placement is updated (``apply._place``). The next page is read while the matcher takes
the current one; at most a few pages are ever in memory.

Before the first page, the payments that carry unapplied money at connection time are
read (``reader.unapplied_payments``: QBO's payments, Xero's open overpayments and
prepayments) and handed to the matcher as accounting payments, the same call and mapping
the CDC poll uses: money a customer paid before the connection, applied to no invoice, is
known before any of its invoices is placed, so those it covers start paused for review
(docs/matching.md, "Unapplied payments"). The CDC poll only looks back from the
connection, so without this read such money would never be seen.

After each page a checkpoint (next position, last invoice id, counters) is stored, so a
crash resumes where it stopped. Invoices paid meanwhile leave the listing, and the rows
after them move back: a page read from the old position would skip as many. Rows already
seen are skipped by id, and how the run makes sure it skips none depends on the
platform's paging (``reader.pages_by_number``):

* From any row (QBO's ``STARTPOSITION``): pages overlap by ``OVERLAP`` rows; a page whose
  first row comes after the last invoice seen means more rows than the overlap vanished,
  and the run steps back a page rather than skip one.
* By page number only (Xero): pages do not overlap, so each costs one call. Each answer
  says how many invoices match (``pagination.itemCount``); when that count changed since
  the previous page, rows may have moved back past the position onto the previous page:
  the run keeps the page it read and reads the previous one again for them (one more
  call; further back, dropping the page read ahead, while that page's first row is past
  the last invoice seen). A resumed run starts with the page holding the last invoice it
  saw. The count cannot tell one invoice leaving before the position while
  another joins the listing between two reads: that one unchanged invoice would then
  wait for the next full backfill (the joining one is seen by the poll).

Changes made in QBO while the backfill runs reach the matcher through the CDC poll, whose
high-water mark is set before the first page is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.budget import Priority
from services.integration.models import PlacedInvoice, SyncState
from services.integration.providers.base import InvoiceFacts, Json, Page
from services.integration.sync import apply, apply_context, candidates, state
from services.integration.sync.context import SyncDeps
from services.integration.sync.rules import get_rules

log = logging.getLogger(__name__)

OVERLAP = 20
# Pages handed to the matcher at once: one is upserted while the next is prepared and
# the previous one's checkpoint is written.
PAGES_IN_FLIGHT = 2


class BackfillSuperseded(Exception):
    """The run's row was reset by a newer request while it ran."""


def id_key(invoice_id: str) -> tuple[int, str]:
    """QBO ids are numeric strings: order them as numbers (others after, as text)."""
    return (len(invoice_id), invoice_id) if invoice_id.isdigit() else (1 << 30, invoice_id)


def page_start(row: int, page_size: int) -> int:
    """The first row of the page of ``page_size`` rows that holds ``row`` (1-based)."""
    return (max(1, row) - 1) // page_size * page_size + 1


@dataclass
class _Page:
    rows: list[dict[str, Any]]
    facts: list[InvoiceFacts]
    next_position: int
    last_id: str


@dataclass(frozen=True)
class BackfillResult:
    run_id: str
    invoices_seen: int
    placements_created: int
    pages: int


async def _produce(
    ctx: apply_context.SyncContext,
    today: date,
    position: int,
    last_id: str,
    page_size: int,
    out: asyncio.Queue[_Page | BaseException | None],
) -> None:
    """Reads pages ahead of the consumer (and, when they are placed at once, their
    customers); None at the end."""
    try:
        # Staged candidates need no customer (nor does the preview that shows them).
        prefetch = await ctx.intake_mode() == candidates.AUTOMATIC
        by_number = ctx.reader.pages_by_number
        overlap = 0 if by_number else OVERLAP
        if not last_id:
            start = max(1, position)
        elif by_number:  # the page holding the last row seen
            start = page_start(position - 1, page_size)
        else:
            start = max(1, position - overlap)
        # Whether this read starts at or before the last row seen: then a first row past
        # it means more rows vanished before it than it goes back.
        covering = bool(last_id)
        # Without overlap, the platform's count of matching rows at the read the next page
        # continues from: a change means rows may have moved back past the position.
        total: int | None = None
        ahead: Page | None = None  # a page read before stepping back for what it passed
        while True:
            page = await ctx.reader.overdue_invoices(today, start, page_size)
            rows = page.rows
            first = ctx.facts.entity_id(rows[0]) if rows else ""
            if start > 1 and last_id:
                if covering and (not rows or id_key(first) > id_key(last_id)):
                    # Rows vanished before our position: step back a page (a page read
                    # ahead is read again on the way forward).
                    start, ahead = max(1, start - page_size), None
                    continue
                if not covering and None not in (total, page.total) and page.total != total:
                    # The listing changed: read the previous page again for the rows that
                    # moved back onto it, and keep this one.
                    start, covering, ahead = start - page_size, True, page
                    continue
            if ahead is not None and ahead.total != page.total:
                ahead = None  # changed again since: go on from here, the next page read anew
            if ahead is not None:
                rows = rows + ahead.rows
                end, total = ahead.start_position + len(ahead.rows), ahead.total
                short, ahead = len(ahead.rows) < page_size, None
            else:
                end, total, short = start + len(rows), page.total, len(rows) < page_size
            fresh = _after(ctx, rows, last_id)
            facts = [ctx.facts.invoice_facts(r) for r in fresh]
            if fresh:
                last_id = max((f.invoice_id for f in facts), key=id_key)
            if fresh and prefetch:
                # Read the customers now, while the matcher takes the previous page.
                await ctx.customers(f.customer_id for f in facts if ctx.rules.places(f, today))
            await out.put(_Page(fresh, facts, end, last_id))
            if short:
                break
            start, covering = max(1, end - overlap), overlap > 0
        await out.put(None)
    except Exception as exc:  # handed to the consumer, which raises it
        await out.put(exc)


def _after(ctx: apply_context.SyncContext, rows: list[Json], last_id: str) -> list[Json]:
    """The rows after ``last_id`` (all without one), each invoice once."""
    fresh: dict[str, Json] = {}
    for row in rows:
        invoice_id = ctx.facts.entity_id(row)
        if not last_id or id_key(invoice_id) > id_key(last_id):
            fresh.setdefault(invoice_id, row)
    return list(fresh.values())


async def apply_unapplied_payments(ctx: apply_context.SyncContext) -> int:
    """Reads the payments that may carry unapplied money and sends the matcher those that
    do (active, ``unapplied_amount`` above zero), page by page; how many were sent."""
    sent = 0
    async for page in ctx.reader.unapplied_payments():
        rows = [row for row in page.rows if carries_unapplied_money(ctx.facts.payment(row))]
        if rows:
            await apply.apply_payments(ctx, rows)
            sent += len(rows)
    return sent


def carries_unapplied_money(payment: mpb.AccountingPayment) -> bool:
    return payment.state == mpb.ENTITY_STATE_ACTIVE and payment.unapplied_amount.minor_units > 0


async def placed_by(deps: SyncDeps, tenant_id: str, realm_id: str, run_id: str) -> int:
    """How many placements this run created (exact across crashes: recorded with each)."""
    async with deps.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(PlacedInvoice)
            .where(
                PlacedInvoice.tenant_id == tenant_id,
                PlacedInvoice.realm_id == realm_id,
                PlacedInvoice.placed_by_run == run_id,
            )
        )
    return int(count or 0)


async def run_backfill(
    deps: SyncDeps, tenant_id: str, realm_id: str, *, page_size: int | None = None
) -> BackfillResult | None:
    """Runs the realm's pending backfill, or resumes a running or failed one from its
    checkpoint. The caller holds the realm's backfill lock. None when there is none."""
    async with deps.sessions() as session:
        row = await state.load(session, tenant_id, realm_id)
    if row is None or row.backfill_phase not in (state.PENDING, state.RUNNING, state.FAILED):
        return None
    run_id = row.backfill_run_id
    reader = deps.reader(tenant_id, realm_id, Priority.BACKFILL)
    started = row.backfill_started_at or state.now()
    if row.backfill_company_date is None:
        text = await reader.company_time()
        clock = await apply_context.remember_company_time(deps, tenant_id, realm_id, text)
        today = clock.today()
        values: dict[str, Any] = {"backfill_company_date": today}
        if row.cdc_high_water is None:  # changes from now on are the CDC poll's
            values["cdc_high_water"] = text
        if row.cdc_next_poll_at is None:
            values["cdc_next_poll_at"] = state.now() + timedelta(
                seconds=deps.settings.cdc_interval_seconds
            )
    else:
        today = row.backfill_company_date
        values = {}
    if not await state.update_state(
        deps.sessions,
        tenant_id,
        realm_id,
        run_id=run_id,
        backfill_phase=state.RUNNING,
        backfill_started_at=started,
        backfill_last_error="",
        **values,
    ):
        raise BackfillSuperseded(run_id)
    async with deps.sessions() as session:
        stored = await get_rules(session, tenant_id)
    rules = stored.rules
    ctx = apply_context.SyncContext(
        deps,
        tenant_id,
        realm_id,
        rules=rules,
        rules_version=stored.version,
        today=today,
        source="backfill",
        source_event_id=f"backfill:{run_id}",
        reader=reader,
    )
    log.info(
        "backfill running",
        extra={
            "tenant_id": tenant_id,
            "realm_id": realm_id,
            "run_id": run_id,
            "company_date": today.isoformat(),
            "position": row.backfill_next_position,
        },
    )
    if not row.backfill_last_invoice_id:  # no page done yet: this run has not read them
        unapplied = await apply_unapplied_payments(ctx)
        log.info(
            "backfill read the unapplied payments",
            extra={
                "tenant_id": tenant_id,
                "realm_id": realm_id,
                "run_id": run_id,
                "payments": unapplied,
                "calls": reader.calls,
            },
        )
    seen, created, pages = row.backfill_invoices_seen, row.backfill_placements_created, 0
    queue: asyncio.Queue[_Page | BaseException | None] = asyncio.Queue(maxsize=1)
    producer = asyncio.create_task(
        _produce(
            ctx,
            today,
            row.backfill_next_position,
            row.backfill_last_invoice_id,
            page_size or reader.max_page,
            queue,
        ),
        name=f"backfill-pages:{tenant_id}",
    )
    window: deque[tuple[_Page, asyncio.Task[apply_context.ApplyStats]]] = deque()

    async def settle() -> None:
        """Waits for the oldest page in flight, then stores its checkpoint (in page order,
        so a checkpoint never covers a page that is not done)."""
        nonlocal seen, created, pages
        page, task = window.popleft()
        await task
        seen += len(page.rows)
        created = await placed_by(deps, tenant_id, realm_id, run_id)
        pages += 1
        if not await state.update_state(
            deps.sessions,
            tenant_id,
            realm_id,
            run_id=run_id,
            backfill_next_position=page.next_position,
            backfill_last_invoice_id=page.last_id,
            backfill_invoices_seen=seen,
            backfill_placements_created=created,
        ):
            raise BackfillSuperseded(run_id)

    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            work = apply.apply_invoices(ctx, item.rows, only_placeable=True, facts=item.facts)
            window.append((item, asyncio.create_task(work)))
            if len(window) >= PAGES_IN_FLIGHT:
                await settle()
        while window:
            await settle()
    finally:
        producer.cancel()
        for _, task in window:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await producer
        for _, task in window:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    cutoff = rules.due_cutoff(today)
    await state.update_state(
        deps.sessions,
        tenant_id,
        realm_id,
        run_id=run_id,
        backfill_phase=state.COMPLETED,
        backfill_finished_at=state.now(),
        # It has just read every invoice it placed: the periodic re-read of placed invoices
        # (Xero) starts its period now, not at the first poll (30,000 placements would cost
        # 750 calls of the organisation's day again, an hour after reading them).
        placed_reread_at=state.now(),
        backfill_last_error="",
        backfill_attempts=0,
        backfill_next_attempt_at=None,
        overdue_through=func.greatest(func.coalesce(SyncState.overdue_through, cutoff), cutoff),
    )
    log.info(
        "backfill completed",
        extra={
            "tenant_id": tenant_id,
            "realm_id": realm_id,
            "run_id": run_id,
            "invoices_seen": seen,
            "placements_created": created,
            "qbo_calls": reader.calls,
        },
    )
    return BackfillResult(run_id, seen, created, pages)
