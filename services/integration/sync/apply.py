"""Apply QBO entities "as now known" to the matcher: the one path every sync takes.

The backfill, the CDC poll and the webhook processor all end here: ``apply_changes`` (a
set of changed entities, deleted ones as ``{"Id": ..., "status": "Deleted"}`` stubs) and
its parts ``apply_invoices`` / ``apply_customers`` / ``apply_payments`` /
``apply_credit_memos``, on a :class:`SyncContext`.

What each entity means:

* Invoice: when it is overdue on the company's today and passes the tenant's rules it is
  upserted as a placement (``UpsertPlacements``, with the customer's contact), and, when the
  placement already existed, its amounts go through ``ApplyAccountingInvoice`` (upserts
  never change amounts). Any other state -- paid, edited below the rules, voided,
  deleted -- goes through ``ApplyAccountingInvoice``; the matcher decides.
* Customer: the placements of that customer's invoices get the new contact (upsert). A
  customer made inactive ("deleted" in QBO) changes no placement by itself: what is owed
  follows its invoices and payments (QBO refuses to make a customer with an open balance
  inactive, so its invoices are normally settled first, and those settlements resolve or
  close the placements as usual). Should it still owe, its overdue invoices are placed and
  followed like any other, with its own contact: customers are always read with
  ``Active IN (true, false)`` (or by id), and the `` (deleted)`` QBO appends to the name is
  dropped.
* Payment: ``ApplyAccountingPayment`` with the payment as now known (voided, deleted too).
* CreditMemo: the matcher has no credit-memo call; an applied memo shows up as a Payment
  and as changed invoice balances. The memo's linked invoices and its customer's placed
  invoices are re-read and applied, so the matcher converges whatever order things come in.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import grpc
from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.errors import Unavailable
from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.budget import Priority
from services.integration.models import PlacedInvoice
from services.integration.providers.base import AccountingFacts, EntityReader, InvoiceFacts
from services.integration.sync import candidates, state
from services.integration.sync.context import SyncDeps
from services.integration.sync.rules import PlacementRules, get_rules, placeable

log = logging.getLogger(__name__)

Json = dict[str, Any]
T = TypeVar("T")

SOURCES = {
    "webhook": mpb.CHANGE_SOURCE_WEBHOOK,
    "cdc": mpb.CHANGE_SOURCE_CDC,
    "backfill": mpb.CHANGE_SOURCE_BACKFILL,
    "replay": mpb.CHANGE_SOURCE_REPLAY,
}
# The integration's platform names (``AccountingPlatform.name``) as matcher providers.
MATCHER_PROVIDERS: dict[str, mpb.Provider.ValueType] = {
    "qbo": mpb.PROVIDER_QBO,
    "xero": mpb.PROVIDER_XERO,
}
UPSERT_BATCH = 1000  # the matcher's limit per UpsertPlacements call
UPSERT_PARALLEL = 500  # a full batch is sent as concurrent calls of this size
APPLY_CONCURRENCY = 8
MATCHER_TIMEOUT_S = 120.0
CUSTOMER_CACHE = 5000
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


@dataclass
class ApplyStats:
    invoices_seen: int = 0
    placements_created: int = 0
    placements_updated: int = 0
    invoice_decisions: int = 0
    payment_decisions: int = 0
    contacts_refreshed: int = 0
    skipped: int = 0
    candidates_staged: int = 0
    candidates_updated: int = 0

    def add(self, other: ApplyStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


class SyncContext:
    """What applying changes for one realm needs: rules, the company's today, a reader
    (at the caller's priority), the source recorded in the matcher's audit, and a
    bounded cache of customers."""

    def __init__(
        self,
        deps: SyncDeps,
        tenant_id: str,
        realm_id: str,
        *,
        rules: PlacementRules,
        today: date,
        source: str,
        source_event_id: str = "",
        reader: EntityReader,
        rules_version: int = 0,
    ) -> None:
        self.deps = deps
        self.tenant_id = tenant_id
        self.realm_id = realm_id
        self.rules = rules
        self.rules_version = rules_version  # recorded with the candidates it selects
        self.today = today
        self.source = SOURCES[source]
        self.source_event_id = source_event_id
        self.reader = reader
        self.facts: AccountingFacts = deps.platform.facts
        # The platform as the matcher's contract names it.
        self.provider = MATCHER_PROVIDERS[deps.platform.name]
        # A backfill run's id (``backfill:<run>``), recorded with what it places first.
        self.run_id = source_event_id.removeprefix("backfill:") if source == "backfill" else ""
        self._customers: OrderedDict[str, mpb.DebtorContact | None] = OrderedDict()
        self._intake_mode: str | None = None

    async def intake_mode(self) -> str:
        """The tenant's intake mode (``candidates.PREVIEW`` ...), read once per context."""
        if self._intake_mode is None:
            async with self.deps.sessions() as session:
                self._intake_mode = await candidates.intake_mode(
                    session, self.tenant_id, self.deps.platform.name
                )
        return self._intake_mode

    @classmethod
    async def open(
        cls,
        deps: SyncDeps,
        tenant_id: str,
        realm_id: str,
        *,
        source: str,
        priority: Priority,
        source_event_id: str = "",
    ) -> SyncContext:
        """Loads the rules and the company's today (asking QBO when the clock is stale)."""
        reader = deps.reader(tenant_id, realm_id, priority)
        async with deps.sessions() as session:
            stored = await get_rules(session, tenant_id)
            clock = state.clock_of(
                await state.load(session, tenant_id, realm_id), deps.platform.facts.parse_time
            )
        if clock is None or not state.clock_fresh(clock):
            clock = await observe_company_time(deps, reader)
        return cls(
            deps,
            tenant_id,
            realm_id,
            rules=stored.rules,
            rules_version=stored.version,
            today=clock.today(),
            source=source,
            source_event_id=source_event_id,
            reader=reader,
        )

    # -- customers ----------------------------------------------------------------------

    def remember_customers(self, customers: Iterable[Json]) -> None:
        for customer in customers:
            self._remember(self.facts.entity_id(customer), self.facts.debtor_contact(customer))

    def _remember(self, customer_id: str, contact: mpb.DebtorContact | None) -> None:
        self._customers[customer_id] = contact
        self._customers.move_to_end(customer_id)
        while len(self._customers) > CUSTOMER_CACHE:
            self._customers.popitem(last=False)

    async def customers(self, ids: Iterable[str]) -> dict[str, mpb.DebtorContact | None]:
        """The debtor contacts of these customers (None for one QBO no longer has), read in
        batches and kept (a bounded cache) so each customer is read and mapped once."""
        wanted = [i for i in dict.fromkeys(ids) if i]
        missing = [i for i in wanted if i not in self._customers]
        if missing:
            found = await self.reader.by_ids("Customer", missing)
            for customer_id in missing:
                customer = found.get(customer_id)
                contact = self.facts.debtor_contact(customer) if customer is not None else None
                self._remember(customer_id, contact)
        return {i: self._customers.get(i) for i in wanted}

    # -- matcher calls ------------------------------------------------------------------

    async def _matcher(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE:
                raise Unavailable(
                    f"the matcher did not take {what} ({exc.code().name}); retrying later",
                    retry_after_seconds=5,
                ) from None
            raise

    async def upsert(self, inputs: Sequence[mpb.PlacementInput]) -> list[mpb.UpsertResult]:
        """``UpsertPlacements`` in batches; a batch the matcher refuses is retried item by
        item so one malformed invoice cannot hold the others back."""
        results: list[mpb.UpsertResult] = []
        for start in range(0, len(inputs), UPSERT_BATCH):
            batch = inputs[start : start + UPSERT_BATCH]
            parts = [batch[i : i + UPSERT_PARALLEL] for i in range(0, len(batch), UPSERT_PARALLEL)]
            replies = await asyncio.gather(*(self._upsert_part(part) for part in parts))
            for reply in replies:
                results.extend(reply)
        return results

    async def _upsert_part(self, part: Sequence[mpb.PlacementInput]) -> list[mpb.UpsertResult]:
        request = mpb.UpsertPlacementsRequest(
            tenant_id=self.tenant_id,
            provider=self.provider,
            company_id=self.realm_id,
            placements=part,
        )
        try:
            reply = await self._matcher(
                "the placements",
                lambda: self.deps.matching.UpsertPlacements(request, timeout=MATCHER_TIMEOUT_S),
            )
            return list(reply.results)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            if len(part) == 1:
                log.error(
                    "the matcher refused an invoice",
                    extra={
                        "tenant_id": self.tenant_id,
                        "realm_id": self.realm_id,
                        "qbo_invoice_id": part[0].invoice_id,
                        "detail": exc.details(),
                    },
                )
                return []
            out: list[mpb.UpsertResult] = []
            for item in part:
                out.extend(await self._upsert_part([item]))
            return out

    async def apply_invoice_state(self, invoice: mpb.AccountingInvoice) -> int:
        request = mpb.ApplyAccountingInvoiceRequest(
            tenant_id=self.tenant_id,
            provider=self.provider,
            company_id=self.realm_id,
            invoice=invoice,
            source=self.source,
            source_event_id=self.source_event_id,
        )
        return await self._decide(
            f"invoice {invoice.invoice_id}",
            lambda: self.deps.matching.ApplyAccountingInvoice(request, timeout=MATCHER_TIMEOUT_S),
        )

    async def apply_payment_state(self, payment: mpb.AccountingPayment) -> int:
        request = mpb.ApplyAccountingPaymentRequest(
            tenant_id=self.tenant_id,
            provider=self.provider,
            company_id=self.realm_id,
            payment=payment,
            source=self.source,
            source_event_id=self.source_event_id,
        )
        return await self._decide(
            f"payment {payment.payment_id}",
            lambda: self.deps.matching.ApplyAccountingPayment(request, timeout=MATCHER_TIMEOUT_S),
        )

    async def _decide(self, what: str, call: Callable[[], Awaitable[Any]]) -> int:
        """A decision call; -1 when the matcher refuses the entity as malformed (logged)."""
        try:
            reply = await self._matcher(what, call)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.FAILED_PRECONDITION,
            ):
                raise
            log.error(
                "the matcher refused an accounting change",
                extra={
                    "tenant_id": self.tenant_id,
                    "realm_id": self.realm_id,
                    "what": what,
                    "detail": exc.details(),
                },
            )
            return -1
        outcomes = self.deps.metrics.match_outcomes
        for decision in reply.decisions:
            outcomes.labels(mpb.DecisionOutcome.Name(decision.outcome)).inc()
        return len(reply.decisions)

    async def placed(
        self, *, customer_ids: Sequence[str] = (), invoice_ids: Sequence[str] = ()
    ) -> dict[str, str]:
        """Placed invoices (invoice id -> customer id) of these customers or ids."""
        if not customer_ids and not invoice_ids:
            return {}
        conditions = []
        if customer_ids:
            conditions.append(PlacedInvoice.qbo_customer_id.in_(list(customer_ids)))
        if invoice_ids:
            conditions.append(PlacedInvoice.qbo_invoice_id.in_(list(invoice_ids)))
        async with self.deps.sessions() as session:
            rows = await session.execute(
                select(PlacedInvoice.qbo_invoice_id, PlacedInvoice.qbo_customer_id).where(
                    PlacedInvoice.tenant_id == self.tenant_id,
                    PlacedInvoice.realm_id == self.realm_id,
                    or_(*conditions),
                )
            )
            return dict(rows.tuples().all())

    async def delivered_versions(self, invoice_ids: Sequence[str]) -> dict[str, str]:
        """The invoice version the matcher was last given, for placed invoices."""
        if not invoice_ids:
            return {}
        async with self.deps.sessions() as session:
            rows = await session.execute(
                select(PlacedInvoice.qbo_invoice_id, PlacedInvoice.sync_token).where(
                    PlacedInvoice.tenant_id == self.tenant_id,
                    PlacedInvoice.realm_id == self.realm_id,
                    PlacedInvoice.qbo_invoice_id.in_(list(invoice_ids)),
                )
            )
            return dict(rows.tuples().all())

    async def record_placed(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Remembers placed invoices: (invoice id, customer id, placement id, the version
        the matcher now has). One statement for the whole batch (arrays, ``unnest``)."""
        if not rows:
            return
        async with self.deps.sessions.begin() as session:
            await self.record_placed_in(session, rows)

    async def record_placed_in(
        self, session: AsyncSession, rows: Sequence[tuple[str, str, str, str]]
    ) -> None:
        """``record_placed`` inside the caller's transaction (a confirmation records the
        placements and marks its candidates confirmed in one)."""
        if not rows:
            return
        invoice_ids, customer_ids, placement_ids, tokens = (
            list(c) for c in zip(*rows, strict=True)
        )
        await session.execute(
            _RECORD_PLACED,
            {
                "tenant": self.tenant_id,
                "realm": self.realm_id,
                "run": self.run_id,
                "invoices": invoice_ids,
                "customers": customer_ids,
                "placements": placement_ids,
                "tokens": tokens,
            },
        )


_RECORD_PLACED = text(
    """
    INSERT INTO integration.placed_invoices AS p
        (tenant_id, realm_id, qbo_invoice_id, qbo_customer_id, placement_id, sync_token,
         placed_by_run)
    SELECT :tenant, :realm, i, c, pl, t, :run
    FROM unnest(
        CAST(:invoices AS text[]), CAST(:customers AS text[]),
        CAST(:placements AS text[]), CAST(:tokens AS text[])
    ) AS u(i, c, pl, t)
    ON CONFLICT (tenant_id, realm_id, qbo_invoice_id) DO UPDATE SET
        qbo_customer_id = excluded.qbo_customer_id,
        placement_id = excluded.placement_id,
        sync_token = excluded.sync_token
    WHERE (p.qbo_customer_id, p.placement_id, p.sync_token)
        IS DISTINCT FROM (excluded.qbo_customer_id, excluded.placement_id, excluded.sync_token)
    """
)


async def observe_company_time(deps: SyncDeps, reader: EntityReader) -> state.CompanyClock:
    """Reads QBO's time for the company and remembers it (the company's clock)."""
    qbo_time = await reader.company_time()
    return await remember_company_time(deps, reader.tenant_id, reader.realm_id, qbo_time)


async def remember_company_time(
    deps: SyncDeps, tenant_id: str, realm_id: str, qbo_time: str
) -> state.CompanyClock:
    """Stores QBO's time for the company as just seen; the company's clock runs from it."""
    seen_at = state.now()
    clock = state.CompanyClock(deps.platform.facts.parse_time(qbo_time), seen_at)
    await state.update_state(
        deps.sessions, tenant_id, realm_id, company_time=qbo_time, company_time_seen_at=seen_at
    )
    return clock


async def _bounded(items: Sequence[T], work: Callable[[T], Awaitable[int]]) -> list[int]:
    """Runs ``work`` over ``items``, at most APPLY_CONCURRENCY at a time; first error wins."""
    semaphore = asyncio.Semaphore(APPLY_CONCURRENCY)

    async def one(item: T) -> int:
        async with semaphore:
            return await work(item)

    results = await asyncio.gather(*(one(i) for i in items), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return [r for r in results if isinstance(r, int)]


# -- invoices ------------------------------------------------------------------------------


async def apply_invoices(
    ctx: SyncContext,
    invoices: Sequence[Json],
    *,
    only_placeable: bool = False,
    facts: Sequence[InvoiceFacts] | None = None,
) -> ApplyStats:
    """Invoices as now known (deleted stubs too). ``only_placeable`` (the backfill, whose
    query returns only candidates) skips the ones the rules leave out instead of sending
    their state to the matcher. ``facts``: the invoices' facts when already computed.

    Invoices that are placement candidates (not yet confirmed) update their candidates
    and never reach the matcher; newly selected invoices are staged as candidates unless
    the tenant's intake mode is ``automatic`` (``sync.candidates``)."""
    stats = ApplyStats(invoices_seen=len(invoices))
    known_all: list[tuple[Json, InvoiceFacts | None]] = [
        (
            invoice,
            None
            if ctx.facts.is_deleted(invoice)
            else facts[n]
            if facts is not None
            else ctx.facts.invoice_facts(invoice),
        )
        for n, invoice in enumerate(invoices)
    ]
    staged = await candidates.open_candidates(
        ctx, [ctx.facts.entity_id(invoice) for invoice, _ in known_all]
    )
    if staged:
        mine = [(i, f) for i, f in known_all if ctx.facts.entity_id(i) in staged]
        changed, placed_meanwhile = await candidates.update_from_sync(ctx, mine)
        stats.candidates_updated += changed
        back = {ctx.facts.entity_id(i) for i in placed_meanwhile}
        known_all = [
            (i, f)
            for i, f in known_all
            if ctx.facts.entity_id(i) not in staged or ctx.facts.entity_id(i) in back
        ]
    to_place: list[tuple[Json, InvoiceFacts]] = []
    to_apply: list[mpb.AccountingInvoice] = []
    open_others: list[tuple[Json, InvoiceFacts]] = []
    for invoice, known in known_all:
        if known is None:
            to_apply.append(ctx.facts.invoice(invoice))
        elif ctx.rules.places(known, ctx.today) and placeable(known):
            to_place.append((invoice, known))
        elif only_placeable:
            continue
        elif placeable(known) and not known.voided:
            open_others.append((invoice, known))
        else:
            to_apply.append(ctx.facts.invoice(invoice))
    if to_place and await ctx.intake_mode() != candidates.AUTOMATIC:
        # Waiting for the creditor's confirmation: what is not placed yet is staged.
        placed = await ctx.placed(invoice_ids=[f.invoice_id for _, f in to_place])
        fresh = [(i, f) for i, f in to_place if f.invoice_id not in placed]
        to_place = [(i, f) for i, f in to_place if f.invoice_id in placed]
        stats.candidates_staged += await candidates.stage(ctx, fresh)
    if open_others:
        # Still owed but no longer placeable under the rules (not yet due again, below a
        # minimum): an existing placement still gets its invoice fields and amounts.
        placed = await ctx.placed(invoice_ids=[f.invoice_id for _, f in open_others])
        for invoice, known in open_others:
            if known.invoice_id in placed:
                to_place.append((invoice, known))
            else:
                to_apply.append(ctx.facts.invoice(invoice))
    if to_place:
        stats.add(await _place(ctx, to_place))
    if to_apply:
        decided = await _bounded(to_apply, ctx.apply_invoice_state)
        stats.invoice_decisions += sum(d for d in decided if d > 0)
        stats.skipped += sum(1 for d in decided if d < 0)
    return stats


async def _place(ctx: SyncContext, invoices: Sequence[tuple[Json, InvoiceFacts]]) -> ApplyStats:
    """Upserts placements for placeable invoices. An existing placement then gets the
    invoice's amounts through ApplyAccountingInvoice, unless the matcher was already given
    this version of the invoice (a repeated backfill sends no decision calls)."""
    stats = ApplyStats()
    facts = {f.invoice_id: f for _, f in invoices}
    customers = await ctx.customers(f.customer_id for f in facts.values())
    inputs = [
        ctx.facts.placement_input(invoice, facts=f, debtor=customers.get(f.customer_id))
        for invoice, f in invoices
    ]
    by_id = {f.invoice_id: invoice for invoice, f in invoices}
    results = await ctx.upsert(inputs)
    stats.skipped += len(inputs) - len(results)
    versions = {i.invoice_id: i.version for i in inputs}
    existing = [r for r in results if r.outcome != mpb.UPSERT_OUTCOME_CREATED]
    delivered = await ctx.delivered_versions([r.invoice_id for r in existing])
    to_apply = [r for r in existing if delivered.get(r.invoice_id) != versions[r.invoice_id]]
    decided = await _bounded(
        [ctx.facts.invoice(by_id[r.invoice_id]) for r in to_apply], ctx.apply_invoice_state
    )
    refused = {r.invoice_id for r, d in zip(to_apply, decided, strict=True) if d < 0}
    stats.invoice_decisions += sum(d for d in decided if d > 0)
    stats.skipped += len(refused)
    rows = []
    for result in results:
        invoice_id = result.invoice_id
        if result.outcome == mpb.UPSERT_OUTCOME_CREATED:
            stats.placements_created += 1
        elif result.outcome == mpb.UPSERT_OUTCOME_UPDATED:
            stats.placements_updated += 1
        token = delivered.get(invoice_id, "") if invoice_id in refused else versions[invoice_id]
        rows.append((invoice_id, facts[invoice_id].customer_id, result.placement_id, token))
    await ctx.record_placed(rows)
    return stats


async def refresh_placed_invoices(ctx: SyncContext, invoice_ids: Sequence[str]) -> ApplyStats:
    """Re-reads invoices from QBO and applies them (missing ones are left to CDC)."""
    if not invoice_ids:
        return ApplyStats()
    found = await ctx.reader.by_ids("Invoice", invoice_ids)
    return await apply_invoices(ctx, list(found.values()))


# -- customers -----------------------------------------------------------------------------


async def apply_customers(ctx: SyncContext, customers: Sequence[Json]) -> ApplyStats:
    """New contact details reach the placements of the customers' invoices."""
    stats = ApplyStats()
    live = [c for c in customers if not ctx.facts.is_deleted(c) and ctx.facts.entity_id(c)]
    ctx.remember_customers(live)
    placed = await ctx.placed(customer_ids=[ctx.facts.entity_id(c) for c in live])
    if not placed:
        return stats
    found = await ctx.reader.by_ids("Invoice", list(placed))
    open_invoices = []
    for invoice in found.values():
        facts = ctx.facts.invoice_facts(invoice)
        if placeable(facts) and not facts.voided:
            open_invoices.append((invoice, facts))
    if open_invoices:
        placed_stats = await _place(ctx, open_invoices)
        stats.add(placed_stats)
        stats.contacts_refreshed += placed_stats.placements_updated
    return stats


# -- payments and credit memos -------------------------------------------------------------


async def apply_payments(ctx: SyncContext, payments: Sequence[Json]) -> ApplyStats:
    """Each payment goes to the matcher (it keeps every payment it is told of, placed or
    not, so a later edit is a difference); the invoices it pays that are still
    placement candidates are read again, so the candidates get the new balance."""
    stats = ApplyStats()
    linked: list[str] = []
    for payment in payments:
        decided = await ctx.apply_payment_state(ctx.facts.payment(payment))
        if decided < 0:
            stats.skipped += 1
        else:
            stats.payment_decisions += decided
        if not ctx.facts.is_deleted(payment):
            linked.extend(ctx.facts.linked_invoice_ids(payment))
    staged = await candidates.open_candidates(ctx, list(dict.fromkeys(linked)))
    if staged:
        found = await ctx.reader.by_ids("Invoice", sorted(staged))
        stats.add(
            await apply_invoices(
                ctx, [found.get(i) or {"Id": i, "status": "Deleted"} for i in sorted(staged)]
            )
        )
    return stats


async def apply_credit_memos(ctx: SyncContext, memos: Sequence[Json]) -> ApplyStats:
    """Re-reads the invoices a memo can have changed and applies them."""
    invoice_ids: list[str] = []
    customer_ids: list[str] = []
    for memo in memos:
        if ctx.facts.is_deleted(memo):
            continue  # what a deleted memo changed arrives as Payment and Invoice changes
        invoice_ids.extend(ctx.facts.linked_invoice_ids(memo))
        customer = ctx.facts.invoice_facts(memo).customer_id
        if customer:
            customer_ids.append(customer)
    placed = await ctx.placed(customer_ids=customer_ids)
    return await refresh_placed_invoices(ctx, list(dict.fromkeys([*invoice_ids, *placed])))


# -- a set of changes ----------------------------------------------------------------------


async def apply_changes(ctx: SyncContext, changes: Mapping[str, Sequence[Json]]) -> ApplyStats:
    """A set of changed entities, in the order that explains them best: customers (so new
    placements carry the new contact), payments (so a balance drop is attributed to the
    payment), invoices, then credit memos."""
    stats = ApplyStats()
    stats.add(await apply_customers(ctx, changes.get("Customer", ())))
    stats.add(await apply_payments(ctx, changes.get("Payment", ())))
    stats.add(await apply_invoices(ctx, changes.get("Invoice", ())))
    stats.add(await apply_credit_memos(ctx, changes.get("CreditMemo", ())))
    return stats
