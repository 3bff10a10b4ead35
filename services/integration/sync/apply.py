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

from collections.abc import Mapping, Sequence

from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.providers.base import InvoiceFacts
from services.integration.sync import candidates
from services.integration.sync.apply_context import ApplyStats, Json, SyncContext
from services.integration.sync.rules import placeable

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
        decided = await ctx.decide(
            [mpb.AccountingChange(invoice=i) for i in to_apply], concurrent=True
        )
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
    decided = await ctx.decide(
        [mpb.AccountingChange(invoice=ctx.facts.invoice(by_id[r.invoice_id])) for r in to_apply],
        concurrent=True,
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
    decided = await ctx.decide(
        [mpb.AccountingChange(payment=ctx.facts.payment(p)) for p in payments]
    )
    for payment, count in zip(payments, decided, strict=True):
        if count < 0:
            stats.skipped += 1
        else:
            stats.payment_decisions += count
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
