"""What each accounting change means for each placement: load, decide, apply.

Every public function runs inside the caller's transaction in three steps:

1. **load** (``decisions/snapshot.py``): the settings, the time, and every placement the
   change concerns, locked ``FOR UPDATE`` in placement-id order, with the rows the rules
   read, as frozen values;
2. **decide** (``decisions/rules/``): the pure matching table returns one effect per
   decision: the placement after it, its audit entries and outreach event, its
   reconciliation rows, and the answer;
3. **apply** (``decisions/effects.py``): the effects become rows through the
   :class:`~services.matcher.journal.Journal`, in the same transaction.

The rules and what each row decides are described in ``docs/matching.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import NotFound
from services.matcher.decisions.effects import apply_effects, write_placement, write_seen
from services.matcher.decisions.outcomes import ACTION_CREATED, ACTION_UPDATED
from services.matcher.decisions.rules.common import audit_entry, report
from services.matcher.decisions.rules.invoices import decide_invoice
from services.matcher.decisions.rules.payments import (
    PaymentScope,
    decide_payment,
    payment_order,
    payment_scope,
    replay,
    replay_scope,
)
from services.matcher.decisions.rules.people import (
    check_reviewed,
    refresh_descriptive,
    restore,
)
from services.matcher.decisions.rules.people import clear_review_flag as clear_flag_rule
from services.matcher.decisions.rules.portal import decide_portal_payment
from services.matcher.decisions.rules.unapplied import pause_new_placements
from services.matcher.decisions.snapshot import (
    Loaded,
    PlacementRow,
    frozen,
    load_context,
    load_ledgers,
    lock_placements,
    lock_seen_payment,
    of_invoices,
    placement_row,
    read_placements,
)
from services.matcher.decisions.values import (
    Context,
    PlacementState,
    PortalState,
    evolve,
)
from services.matcher.domain import (
    Decision,
    EntityState,
    IntakeChannel,
    InvoiceIn,
    Outcome,
    PaymentIn,
    PlacementIn,
    PortalPaymentIn,
    Source,
    Status,
    UpsertOutcome,
    UpsertResult,
    provider_label,
)
from services.matcher.journal import Journal
from services.matcher.models import AUDIT_EVENTS, PAYMENTS, PLACEMENTS, PORTAL_PAYMENTS
from services.matcher.pauses import start_paused

# The placements' columns, for the conditions of what a decision locks.
_P = PLACEMENTS.c


async def _open(session: AsyncSession, source: Source) -> tuple[Context, Journal]:
    ctx = await load_context(session)
    return ctx, Journal(session, ctx.now, source)


# ---------------------------------------------------------------------------------------
# UpsertPlacements
# ---------------------------------------------------------------------------------------


async def upsert_placements(
    session: AsyncSession,
    tenant_id: str,
    provider: str,
    company_id: str,
    items: Sequence[PlacementIn],
) -> list[UpsertResult]:
    """One placement per (tenant, provider, company, invoice). Creates new ones; on existing
    ones refreshes only descriptive fields (``rules/people.refresh_descriptive``). Never
    touches an existing placement's status or balance, so it never resurrects a resolved
    placement. A new one starts paused pending review when its customer's unapplied money
    already recorded covers its balance (``rules/unapplied.pause_new_placements``)."""
    ctx, journal = await _open(session, Source("upsert"))
    now = ctx.now
    rows: list[dict[str, Any]] = [
        {
            "placement_id": str(uuid.uuid4()),
            "tenant_id": tenant_id,
            "provider": provider,
            "company_id": company_id,
            "invoice_id": item.invoice_id,
            "doc_number": item.doc_number,
            "customer_id": item.customer_id,
            "debtor": item.debtor,
            "currency_code": item.balance.currency,
            "original_minor_units": item.total.minor_units,
            "balance_minor_units": item.balance.minor_units,
            "invoice_date": item.invoice_date,
            "due_date": item.due_date,
            "status": Status.ACTIVE.value,
            "resolution_reason": "",
            "review_reason": "",
            "resolving_payment_id": "",
            "intake_channel": IntakeChannel.ACCOUNTING_SYNC.value,
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "cause_payment_id": "",
            "oob_paid_minor_units": 0,
            "mirror_pending_minor_units": 0,
            "unseen_paid_minor_units": 0,
            "invoice_version": item.version,
            "invoice_version_sequence": item.version_sequence,
            "invoice_state": EntityState.ACTIVE.value,
            "invoice_updated_at": item.last_updated,
            "intake_invoice_updated_at": item.last_updated,
            "invoice_total_minor_units": item.total.minor_units,
            "invoice_balance_minor_units": item.balance.minor_units,
            "invoice_linked_payment_ids": list(item.linked_payment_ids),
        }
        for item in items
    ]
    # Inserted in invoice-id order: concurrent batches that overlap then wait for each other
    # in the same order and never deadlock on the unique index.
    rows.sort(key=lambda row: str(row["invoice_id"]))
    inserted = await session.execute(
        pg_insert(PLACEMENTS)
        .on_conflict_do_nothing(constraint="uq_placements_invoice")
        .returning(PLACEMENTS.c.invoice_id, PLACEMENTS.c.placement_id),
        rows,
    )
    created = dict(inserted.tuples().all())
    existing_ids = [item.invoice_id for item in items if item.invoice_id not in created]
    existing = (
        {
            p.invoice_id: p
            for p in await lock_placements(
                session, of_invoices(tenant_id, provider, company_id, existing_ids)
            )
        }
        if existing_ids
        else {}
    )

    results: list[UpsertResult] = []
    audits: list[dict[str, Any]] = []
    for item in items:
        placement_id = created.get(item.invoice_id)
        if placement_id is not None:
            results.append(UpsertResult(item.invoice_id, placement_id, UpsertOutcome.CREATED))
            audits.append(
                {
                    "tenant_id": tenant_id,
                    "subject_type": "placement",
                    "subject_id": placement_id,
                    "action": ACTION_CREATED,
                    "actor": "system",
                    "reason": f"invoice {item.invoice_id} placed from {provider_label(provider)}",
                    "details": {
                        "source": "upsert",
                        "provider": provider,
                        "company_id": company_id,
                        "invoice_id": item.invoice_id,
                        "customer_id": item.customer_id,
                        "provider_version": item.version,
                        "balance_minor_units": item.balance.minor_units,
                        "original_minor_units": item.total.minor_units,
                        "currency_code": item.balance.currency,
                    },
                    "created_at": now,
                }
            )
            continue
        row = existing[item.invoice_id]
        before = frozen(PlacementState, row)
        changes = refresh_descriptive(before, item)
        if changes:
            after = evolve(before, **changes, version=before.version + 1, updated_at=now)
            write_placement(journal, before, after)
            journal.audit(
                audit_entry(
                    after,
                    ACTION_UPDATED,
                    f"descriptive fields refreshed from {provider_label(provider)}",
                    {"fields": list(changes), "provider_version": item.version},
                )
            )
        outcome = UpsertOutcome.UPDATED if changes else UpsertOutcome.UNCHANGED
        results.append(UpsertResult(item.invoice_id, row.placement_id, outcome))
    # The refreshed placements and their audit rows first, then the new placements' audit
    # rows, then whatever a pause adds.
    await journal.flush()
    if audits:
        await session.execute(insert(AUDIT_EVENTS), audits)
    await _pause_covered_at_birth(
        session, journal, ctx, tenant_id, provider, company_id, items, created
    )
    await start_paused(session, tenant_id, list(created.values()), now)
    await journal.close()
    return results


async def _pause_covered_at_birth(
    session: AsyncSession,
    journal: Journal,
    ctx: Context,
    tenant_id: str,
    provider: str,
    company_id: str,
    items: Sequence[PlacementIn],
    created: dict[str, str],
) -> None:
    """New placements whose customer's unapplied money, already recorded, covers their
    balance start paused pending review (``rules/unapplied.pause_new_placements``). Only
    the placements of customers with such money are loaded, so a batch of customers
    without any costs one indexed read."""
    customers = sorted({i.customer_id for i in items if i.invoice_id in created and i.customer_id})
    if not customers:
        return
    seen = PAYMENTS.c
    funded = set(
        (
            await session.execute(
                select(seen.customer_id)
                .distinct()
                .where(
                    seen.tenant_id == tenant_id,
                    seen.provider == provider,
                    seen.company_id == company_id,
                    seen.customer_id.in_(customers),
                    seen.unapplied_minor_units > 0,
                    seen.state == EntityState.ACTIVE.value,
                )
            )
        ).scalars()
    )
    ids = [
        created[i.invoice_id] for i in items if i.invoice_id in created and i.customer_id in funded
    ]
    if not ids:
        return
    loaded = await load_ledgers(
        session, await lock_placements(session, _P.placement_id.in_(sorted(set(ids))))
    )
    await apply_effects(journal, loaded, pause_new_placements(loaded.ordered(), ctx))
    # The pauses are written before ``start_paused`` reads which new placements are active.
    await journal.flush()


# ---------------------------------------------------------------------------------------
# ApplyAccountingPayment
# ---------------------------------------------------------------------------------------


async def apply_payment(
    session: AsyncSession,
    tenant_id: str,
    provider: str,
    company_id: str,
    payment: PaymentIn,
    source: Source,
) -> list[Decision]:
    (decisions,) = await apply_changes(session, tenant_id, provider, company_id, [payment], source)
    return decisions


async def apply_changes(
    session: AsyncSession,
    tenant_id: str,
    provider: str,
    company_id: str,
    changes: Sequence[PaymentIn | InvoiceIn],
    source: Source,
) -> list[list[Decision]]:
    """Decides a company's changes (payments, credits read as payments, invoices) in order,
    in the caller's transaction: each exactly as on its own, seeing what the ones before it
    wrote. The outbox is written once, after every placement lock was taken (the order every
    decision keeps, so a set never deadlocks on the outbox lock)."""
    ctx, journal = await _open(session, source)
    books = (tenant_id, provider, company_id)
    decided: list[tuple[list[Decision], bool]] = []
    for change in changes:
        if isinstance(change, InvoiceIn):
            decided.append((await _invoice(session, ctx, journal, *books, change), True))
        else:
            decided.append(await _payment(session, ctx, journal, *books, change))
        await journal.flush()  # the next change's reads see this one's writes
    await journal.close()
    # A replayed decision is told as it was decided then, never as answered now.
    return [
        [journal.answered(d) for d in decisions] if now else decisions for decisions, now in decided
    ]


async def _payment(
    session: AsyncSession,
    ctx: Context,
    journal: Journal,
    tenant_id: str,
    provider: str,
    company_id: str,
    payment: PaymentIn,
) -> tuple[list[Decision], bool]:
    """The payment's decisions, and whether they were decided now (not replayed)."""
    seen, first_sight = await lock_seen_payment(
        session, tenant_id, provider, company_id, payment, ctx.now
    )

    order = payment_order(seen, payment, first_sight)
    if order <= 0:
        scope = replay_scope(seen)
        loaded = await load_ledgers(
            session,
            await read_placements(session, *_conditions(tenant_id, provider, company_id, scope)),
        )
        return replay(seen, list(loaded.ledgers.values()), stale=order < 0), False

    scope = payment_scope(payment, seen, first_sight)
    # One statement locks every placement the payment concerns (id order, never a deadlock).
    conditions = _conditions(tenant_id, provider, company_id, scope)
    loaded = await load_ledgers(
        session, await lock_placements(session, *conditions), payment_id=payment.payment_id
    )
    ordered = loaded.ordered()
    gone = [ledger for ledger in ordered if scope.gone(ledger.placement)]
    covered = [ledger for ledger in ordered if scope.covers(ledger.placement)]
    decided = decide_payment(payment, seen, first_sight, gone, covered, ctx)
    write_seen(journal, seen, decided.seen)
    await apply_effects(journal, loaded, decided.effects)
    return list(decided.decisions), True


def _conditions(tenant_id: str, provider: str, company_id: str, scope: PaymentScope) -> list[Any]:
    """The placements a payment's scope covers or finds gone, as SQL (``PaymentScope.covers``
    and ``PaymentScope.gone``, which the table applies exactly)."""
    company = (_P.tenant_id == tenant_id, _P.provider == provider, _P.company_id == company_id)
    conditions: list[Any] = []
    if scope.invoice_ids:
        conditions.append(of_invoices(tenant_id, provider, company_id, scope.invoice_ids))
    if scope.customer_id:
        conditions.append(
            and_(*company, _P.customer_id == scope.customer_id, _P.status == Status.ACTIVE.value)
        )
    if scope.gone_cause:
        # Resolved on this payment by an invoice version before it was read.
        conditions.append(
            and_(
                *company,
                _P.cause_payment_id == scope.gone_cause,
                _P.status == Status.RESOLVED_OUT_OF_BAND.value,
            )
        )
    if scope.paused_ids:
        conditions.append(_P.placement_id.in_(scope.paused_ids))
    return conditions


# ---------------------------------------------------------------------------------------
# ApplyAccountingInvoice
# ---------------------------------------------------------------------------------------


async def apply_invoice(
    session: AsyncSession,
    tenant_id: str,
    provider: str,
    company_id: str,
    invoice: InvoiceIn,
    source: Source,
) -> list[Decision]:
    (decisions,) = await apply_changes(session, tenant_id, provider, company_id, [invoice], source)
    return decisions


async def _invoice(
    session: AsyncSession,
    ctx: Context,
    journal: Journal,
    tenant_id: str,
    provider: str,
    company_id: str,
    invoice: InvoiceIn,
) -> list[Decision]:
    locked = await lock_placements(
        session, of_invoices(tenant_id, provider, company_id, [invoice.invoice_id])
    )
    if not locked:
        return [
            report(
                None,
                invoice.invoice_id,
                Outcome.NO_PLACEMENT,
                f"invoice {invoice.invoice_id} is not placed",
            )
        ]
    loaded = await load_ledgers(session, locked[:1])
    effects = decide_invoice(loaded.ordered()[0], invoice, ctx)
    await apply_effects(journal, loaded, effects)
    decision = effects[-1].decision
    assert decision is not None
    return [decision]


# ---------------------------------------------------------------------------------------
# RecordPortalPayment
# ---------------------------------------------------------------------------------------


async def record_portal_payment(
    session: AsyncSession, payment: PortalPaymentIn
) -> tuple[Decision, PlacementRow]:
    ctx, journal = await _open(session, Source("portal"))
    loaded = await _lock_one(session, payment.placement_id)
    existing = (
        await session.execute(
            select(PORTAL_PAYMENTS).where(
                PORTAL_PAYMENTS.c.portal_payment_id == payment.portal_payment_id
            )
        )
    ).first()
    known: PortalState | None = None if existing is None else frozen(PortalState, existing)
    effect = decide_portal_payment(loaded.ordered()[0], known, payment, ctx)
    await apply_effects(journal, loaded, [effect])
    await journal.close()
    assert effect.decision is not None
    return journal.answered(effect.decision), await _reread(session, payment.placement_id)


async def _lock_one(session: AsyncSession, placement_id: str) -> Loaded:
    locked = await lock_placements(session, _P.placement_id == placement_id)
    if not locked:
        raise NotFound(f"placement {placement_id} not found", reason="PLACEMENT_NOT_FOUND")
    return await load_ledgers(session, locked)


async def _reread(session: AsyncSession, placement_id: str) -> PlacementRow:
    """The placement as a decision left it (locked by this transaction), for the reply."""
    row = await placement_row(session, placement_id)
    assert row is not None
    return row


# ---------------------------------------------------------------------------------------
# RestorePlacement, ClearReviewFlag: a person's decisions
# ---------------------------------------------------------------------------------------


async def restore_placement(
    session: AsyncSession, placement_id: str, expected_version: int, actor: str, reason: str
) -> PlacementRow:
    """Support's safe restore of a wrong resolution or review flag (``rules/people.restore``)."""
    actor, reason = require_actor_and_reason(actor, reason)
    ctx, journal = await _open(session, Source("restore"))
    loaded = await _lock_one(session, placement_id)
    ledger = loaded.ordered()[0]
    check_reviewed(ledger.placement, expected_version)
    effect = restore(ledger, expected_version, actor, reason, ctx)
    await apply_effects(journal, loaded, [effect])
    await journal.close()
    return await _reread(session, placement_id)


async def clear_review_flag(
    session: AsyncSession, placement_id: str, expected_version: int, actor: str, reason: str
) -> PlacementRow:
    """A human reviewed a flagged placement: the flag is cleared with an audit entry. Status,
    balance and outreach stay as they are, and the report keeps the entry of its day."""
    actor, reason = require_actor_and_reason(actor, reason)
    ctx, journal = await _open(session, Source("review"))
    loaded = await _lock_one(session, placement_id)
    ledger = loaded.ordered()[0]
    check_reviewed(ledger.placement, expected_version)
    effect = clear_flag_rule(ledger, expected_version, actor, reason, ctx)
    await apply_effects(journal, loaded, [effect])
    await journal.close()
    return await _reread(session, placement_id)
