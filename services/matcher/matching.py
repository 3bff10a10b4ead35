"""The matching rules: what each accounting change means for each placement.

This module is the one place the design's "Matching rules" table lives. Every public
function runs inside the caller's transaction, locks what it changes (``FOR UPDATE``, in
placement-id order), writes each decision with its audit row and outbox event through the
:class:`~services.matcher.journal.Journal`, and returns one :class:`Decision` per placement
(or per linked invoice without one).

The model, in short:

* ``balance`` is what outreach collects. It only moves through the rules below.
* Each QBO payment's amount per linked invoice is kept (``PaymentApplication``):
  ``amount`` is its current line amount, ``counted`` how much of it reduces the balance
  (0 for the QBO record of a portal payment, or a payment excluded by a restore),
  ``reflected`` how much of it the placement's implied QBO balance includes. An edit moves
  ``counted`` to its new target, so only the difference is ever applied; a replay of the
  same version changes nothing (the payment's sync token is kept in ``QboPaymentSeen``).
* ``qbo_balance`` is QBO's open balance as implied by every invoice version and payment
  seen. A new invoice version is compared with it: what payments already explain changes
  nothing, the rest (credit memos, write-offs, edits, payments not read yet) follows QBO,
  which is the truth of what is owed.
* Outreach events follow from status changes (``journal.event_for``): STOP on entering a
  resolved or closed status, PAUSE on entering a review status, BALANCE_CHANGED while
  active. Nothing here ever emits RESUME; only :func:`restore_placement`, a human's
  decision, does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import (
    AlreadyExists,
    ConcurrentModification,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from services.matcher.domain import (
    RESTORABLE,
    REVIEW,
    TERMINAL,
    Decision,
    EntityState,
    EventType,
    IntakeChannel,
    InvoiceIn,
    LinkType,
    Money,
    Outcome,
    PaymentIn,
    PlacementIn,
    PortalPaymentIn,
    ReviewFlag,
    Source,
    Status,
    UpsertOutcome,
    UpsertResult,
    format_money,
)
from services.matcher.journal import Journal, event_for
from services.matcher.models import (
    AuditEvent,
    DoublePayment,
    OutOfBandResolution,
    PaymentApplication,
    PaymentExclusion,
    Placement,
    PortalPayment,
    QboPaymentSeen,
)

PAID_OUT_OF_BAND = "paid out-of-band"
PAID_THROUGH_PORTAL = "paid through the portal"
KIND_PAYMENT = "payment"
KIND_CREDIT_MEMO = "credit_memo"


# ---------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------


def version_order(stored_token: str, stored_state: str, token: str, state: EntityState) -> int:
    """-1: the incoming version is older than the stored one, 0: the same, 1: newer.

    QBO sync tokens are increasing integers; a deletion is final.
    """
    if stored_state == EntityState.DELETED:
        return 0 if state is EntityState.DELETED else -1
    if state is EntityState.DELETED:
        return 1
    if token == stored_token:
        return 0
    if token.isdigit() and stored_token.isdigit():
        return 1 if int(token) > int(stored_token) else -1
    return 1


def _money(placement: Placement, minor_units: int) -> str:
    return format_money(minor_units, placement.currency_code)


def _decision(
    placement: Placement | None,
    qbo_invoice_id: str,
    outcome: Outcome,
    detail: str,
    *,
    applied: int = 0,
    event: EventType | None = None,
) -> Decision:
    if placement is None:
        return Decision("", qbo_invoice_id, outcome, None, None, None, None, detail)
    currency = placement.currency_code
    return Decision(
        placement_id=placement.placement_id,
        qbo_invoice_id=qbo_invoice_id or placement.qbo_invoice_id,
        outcome=outcome,
        status=Status(placement.status),
        balance=Money(currency, placement.balance_minor_units),
        applied=Money(currency, applied) if applied else None,
        event=event,
        detail=detail,
    )


@dataclass(frozen=True)
class _Change:
    """One decision about one placement, applied by :func:`_decide`."""

    outcome: Outcome
    detail: str
    action: str
    status: Status | None = None
    balance: int | None = None
    resolution_reason: str | None = None
    review_reason: str | None = None
    resolving_payment_id: str | None = None
    cause: tuple[str, str | None] | None = None
    details: dict[str, Any] | None = None
    audit: bool = True


def _decide(
    journal: Journal, placement: Placement, change: _Change, qbo_invoice_id: str = ""
) -> Decision:
    """Applies a change to a placement, bumps its version when something visible changed,
    records the audit row and the outreach event the change implies."""
    old_status = Status(placement.status)
    old_balance = placement.balance_minor_units
    new_status = change.status or old_status
    new_balance = old_balance if change.balance is None else max(0, change.balance)
    visible_before = _visible(placement)

    if new_status is not old_status:
        placement.restore_balance_minor_units = old_balance
        if new_status in TERMINAL:
            placement.resolved_at = journal.now
            placement.review_reason = ""
        else:
            placement.resolved_at = None
            placement.resolution_reason = ""
            placement.resolving_qbo_payment_id = ""
        if new_status is Status.ACTIVE:
            placement.review_reason = ""
    placement.status = new_status.value
    placement.balance_minor_units = new_balance
    if change.resolution_reason is not None:
        placement.resolution_reason = change.resolution_reason
    if change.review_reason is not None:
        placement.review_reason = change.review_reason
    if change.resolving_payment_id is not None:
        placement.resolving_qbo_payment_id = change.resolving_payment_id
    if change.cause is not None:
        placement.cause_qbo_payment_id, placement.cause_sync_token = change.cause

    changed = _visible(placement) != visible_before
    if changed:
        placement.version += 1
        placement.updated_at = journal.now
    event = event_for(old_status, new_status, new_balance != old_balance) if changed else None
    reason = (
        placement.resolution_reason
        if new_status in TERMINAL
        else placement.review_reason
        if new_status in REVIEW
        else change.detail
    )
    if event is not None:
        journal.emit(placement, event, reason)
    if change.audit and (changed or change.details):
        journal.audit(
            placement,
            change.action,
            change.detail,
            {
                "outcome": change.outcome.value,
                "previous_status": old_status.value,
                "previous_balance_minor_units": old_balance,
                "outreach_event": event.value if event else "",
                **(change.details or {}),
            },
        )
    return _decision(
        placement,
        qbo_invoice_id,
        change.outcome,
        change.detail,
        applied=old_balance - new_balance,
        event=event,
    )


def _visible(p: Placement) -> tuple[Any, ...]:
    return (
        p.status,
        p.balance_minor_units,
        p.resolution_reason,
        p.review_reason,
        p.resolving_qbo_payment_id,
        p.doc_number,
        p.due_date,
        p.invoice_date,
        p.debtor,
        p.qbo_customer_id,
    )


async def _lock_placements(session: AsyncSession, *conditions: Any) -> list[Placement]:
    """Locks matching placements in id order, so concurrent decisions never deadlock."""
    if not conditions:
        return []
    stmt = (
        select(Placement)
        .where(or_(*conditions))
        .order_by(Placement.placement_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())


async def _active_exclusion(
    session: AsyncSession, placement_id: str, qbo_payment_id: str
) -> PaymentExclusion | None:
    exclusion = await session.get(PaymentExclusion, (placement_id, qbo_payment_id))
    if exclusion is None or exclusion.lifted_at is not None:
        return None
    return exclusion


def _exclusion_holds(exclusion: PaymentExclusion, token: str, updated: datetime | None) -> bool:
    """A restore's exclusion holds until QBO changes the payment (a new sync token)."""
    if exclusion.sync_token is not None:
        return exclusion.sync_token == token
    # Excluded before the payment was read: versions older than the restore are excluded.
    return updated is None or updated <= exclusion.excluded_at


def _record_oob_resolution(journal: Journal, placement: Placement, qbo_payment_id: str) -> None:
    journal.session.add(
        OutOfBandResolution(
            placement_id=placement.placement_id,
            tenant_id=placement.tenant_id,
            qbo_payment_id=qbo_payment_id,
            currency_code=placement.currency_code,
            amount_minor_units=placement.oob_paid_minor_units,
            resolved_at=journal.now,
        )
    )


async def _reclassify_oob_resolutions(journal: Journal, placement: Placement, column: str) -> None:
    await _update_open_oob_resolutions(journal, placement, {column: journal.now})


async def _update_open_oob_resolutions(
    journal: Journal, placement: Placement, values: dict[str, Any]
) -> None:
    """Changes the placement's out-of-band resolutions that still stand."""
    await journal.session.execute(
        update(OutOfBandResolution)
        .where(
            OutOfBandResolution.placement_id == placement.placement_id,
            OutOfBandResolution.restored_at.is_(None),
            OutOfBandResolution.reclassified_at.is_(None),
        )
        .values(values)
    )


def _stopped_by(placement: Placement, status: Status) -> str:
    """What stopped or paused a placement, in words, for a double-payment flag."""
    if status is Status.RESOLVED_OUT_OF_BAND and placement.resolving_qbo_payment_id:
        return f"paid out-of-band (QBO payment {placement.resolving_qbo_payment_id})"
    why = placement.resolution_reason if status in TERMINAL else placement.review_reason
    return f"{status.value} ({why})" if why else status.value


async def _flag_double_payment(
    journal: Journal,
    placement: Placement,
    *,
    qbo_payment_id: str,
    amount: int,
    excess: int,
    unapplied: int,
    previous: Status,
    owed: int,
) -> str | None:
    """A QBO payment brought ``excess`` beyond what the placement owed: records it for the
    report, flags the placement as a possible double payment and audits it, once per
    (placement, payment). Status and outreach are left alone: a flag never resumes
    anything. Returns the flag's reason, or None when this payment was already recorded."""
    inserted = await journal.session.execute(
        pg_insert(DoublePayment)
        .values(
            placement_id=placement.placement_id,
            tenant_id=placement.tenant_id,
            qbo_payment_id=qbo_payment_id,
            currency_code=placement.currency_code,
            amount_minor_units=amount,
            excess_minor_units=excess,
            unapplied_minor_units=unapplied,
            previous_status=previous.value,
            detected_at=journal.now,
        )
        .on_conflict_do_nothing(constraint="uq_double_payments_payment")
        .returning(DoublePayment.id)
    )
    if inserted.first() is None:
        return None
    what = f"QBO payment {qbo_payment_id} of {_money(placement, amount)} to invoice "
    what += placement.qbo_invoice_id
    remainder = f", and {_money(placement, unapplied)} of it is unapplied" if unapplied else ""
    if previous is Status.ACTIVE:
        reason = (
            f"{what} is {_money(placement, excess)} more than the {_money(placement, owed)} "
            f"still owed{remainder}: possible double payment, a refund may be due"
        )
    else:
        after = "stays stopped" if previous in TERMINAL else "stays paused"
        reason = (
            f"{what} arrived after the placement was already {_stopped_by(placement, previous)}"
            f"; {_money(placement, excess)} beyond what was owed{remainder}: possible double "
            f"payment, a refund may be due. Outreach {after}; nothing resumes"
        )
    placement.review_flag = ReviewFlag.POSSIBLE_DOUBLE_PAYMENT.value
    placement.review_flag_reason = reason
    placement.flagged_at = journal.now
    placement.version += 1
    placement.updated_at = journal.now
    journal.audit(
        placement,
        "placement.flagged_possible_double_payment",
        reason,
        {
            "outcome": Outcome.POSSIBLE_DOUBLE_PAYMENT.value,
            "qbo_payment_id": qbo_payment_id,
            "amount_minor_units": amount,
            "excess_minor_units": excess,
            "unapplied_minor_units": unapplied,
            "owed_minor_units": owed,
            "previous_status": previous.value,
            "review_flag": placement.review_flag,
        },
    )
    return reason


def _double_payment_change(
    reason: str, balance: int, details: dict[str, Any], balance_moved: bool
) -> _Change:
    """The decision for a placement already stopped or paused when a payment brought more
    than it owed: only the balance may follow (what little was still owed); the flag and
    its audit entry are :func:`_flag_double_payment`'s."""
    return _Change(
        Outcome.POSSIBLE_DOUBLE_PAYMENT,
        reason,
        "placement.balance_updated",
        balance=balance,
        details=details,
        audit=balance_moved,
    )


async def _audit_double_payment_removed(
    journal: Journal, placement: Placement, facts: _PaymentFacts, details: dict[str, Any]
) -> None:
    """A payment recorded as a possible double payment was voided or deleted in QBO: said
    in the audit; the flag stays until a human clears it."""
    recorded = await journal.session.scalar(
        select(DoublePayment.id).where(
            DoublePayment.placement_id == placement.placement_id,
            DoublePayment.qbo_payment_id == facts.id,
        )
    )
    if recorded is None:
        return
    journal.audit(
        placement,
        "placement.double_payment_removed",
        f"QBO payment {facts.id}, recorded as a possible double payment, was "
        f"{facts.state.value} in QBO; the review flag stays until a human clears it",
        details,
    )


# ---------------------------------------------------------------------------------------
# UpsertPlacements
# ---------------------------------------------------------------------------------------


async def upsert_placements(
    session: AsyncSession, tenant_id: str, realm_id: str, items: Sequence[PlacementIn]
) -> list[UpsertResult]:
    """One placement per (tenant, realm, invoice). Creates new ones; on existing ones refreshes
    only descriptive fields (contact on any placement still being worked, invoice fields from
    an invoice version not older than the stored one). Never touches status or balance, so it
    never resurrects a resolved placement."""
    journal = await Journal.open(session, Source("upsert"))
    now = journal.now
    rows: list[dict[str, Any]] = [
        {
            "placement_id": str(uuid.uuid4()),
            "tenant_id": tenant_id,
            "realm_id": realm_id,
            "qbo_invoice_id": item.qbo_invoice_id,
            "doc_number": item.doc_number,
            "qbo_customer_id": item.qbo_customer_id,
            "debtor": item.debtor,
            "currency_code": item.balance.currency,
            "original_minor_units": item.total.minor_units,
            "balance_minor_units": item.balance.minor_units,
            "invoice_date": item.invoice_date,
            "due_date": item.due_date,
            "status": Status.ACTIVE.value,
            "resolution_reason": "",
            "review_reason": "",
            "resolving_qbo_payment_id": "",
            "intake_channel": IntakeChannel.ACCOUNTING_SYNC.value,
            "version": 1,
            "created_at": now,
            "updated_at": now,
            "cause_qbo_payment_id": "",
            "oob_paid_minor_units": 0,
            "mirror_pending_minor_units": 0,
            "unseen_paid_minor_units": 0,
            "qbo_invoice_sync_token": item.sync_token,
            "qbo_invoice_state": EntityState.ACTIVE.value,
            "qbo_invoice_updated_at": item.last_updated,
            "intake_invoice_updated_at": item.last_updated,
            "qbo_total_minor_units": item.total.minor_units,
            "qbo_balance_minor_units": item.balance.minor_units,
            "qbo_linked_payment_ids": list(item.linked_payment_ids),
        }
        for item in items
    ]
    # Inserted in invoice-id order: concurrent batches that overlap then wait for each other
    # in the same order and never deadlock on the unique index.
    rows.sort(key=lambda row: str(row["qbo_invoice_id"]))
    inserted = await session.execute(
        pg_insert(Placement)
        .on_conflict_do_nothing(constraint="uq_placements_invoice")
        .returning(Placement.qbo_invoice_id, Placement.placement_id),
        rows,
    )
    created = dict(inserted.tuples().all())
    existing_ids = [item.qbo_invoice_id for item in items if item.qbo_invoice_id not in created]
    existing = (
        {
            p.qbo_invoice_id: p
            for p in await _lock_placements(
                session,
                and_(
                    Placement.tenant_id == tenant_id,
                    Placement.realm_id == realm_id,
                    Placement.qbo_invoice_id.in_(existing_ids),
                ),
            )
        }
        if existing_ids
        else {}
    )

    results: list[UpsertResult] = []
    audits: list[dict[str, Any]] = []
    for item in items:
        placement_id = created.get(item.qbo_invoice_id)
        if placement_id is not None:
            results.append(UpsertResult(item.qbo_invoice_id, placement_id, UpsertOutcome.CREATED))
            audits.append(
                {
                    "tenant_id": tenant_id,
                    "subject_type": "placement",
                    "subject_id": placement_id,
                    "action": "placement.created",
                    "actor": "system",
                    "reason": f"invoice {item.qbo_invoice_id} placed from QBO",
                    "details": {
                        "source": "upsert",
                        "realm_id": realm_id,
                        "qbo_invoice_id": item.qbo_invoice_id,
                        "qbo_customer_id": item.qbo_customer_id,
                        "sync_token": item.sync_token,
                        "balance_minor_units": item.balance.minor_units,
                        "original_minor_units": item.total.minor_units,
                        "currency_code": item.balance.currency,
                    },
                    "created_at": now,
                }
            )
            continue
        placement = existing[item.qbo_invoice_id]
        changed = _refresh_descriptive(placement, item)
        if changed:
            placement.version += 1
            placement.updated_at = now
            journal.audit(
                placement,
                "placement.updated",
                "descriptive fields refreshed from QBO",
                {"fields": changed, "sync_token": item.sync_token},
            )
        outcome = UpsertOutcome.UPDATED if changed else UpsertOutcome.UNCHANGED
        results.append(UpsertResult(item.qbo_invoice_id, placement.placement_id, outcome))
    if audits:
        await session.execute(insert(AuditEvent), audits)
    await journal.close()
    return results


def _refresh_descriptive(placement: Placement, item: PlacementIn) -> list[str]:
    if Status(placement.status) in TERMINAL:
        return []
    wanted: dict[str, Any] = {"debtor": item.debtor}
    stored_token = placement.qbo_invoice_sync_token
    if (
        version_order(
            stored_token, placement.qbo_invoice_state, item.sync_token, EntityState.ACTIVE
        )
        >= 0
    ):
        wanted.update(
            doc_number=item.doc_number,
            due_date=item.due_date,
            invoice_date=item.invoice_date,
            qbo_customer_id=item.qbo_customer_id,
        )
    changed = [name for name, value in wanted.items() if getattr(placement, name) != value]
    for name in changed:
        setattr(placement, name, wanted[name])
    return changed


# ---------------------------------------------------------------------------------------
# ApplyAccountingPayment
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _PaymentFacts:
    """The payment as the rules see it (a deleted payment keeps what was recorded)."""

    payment: PaymentIn
    currency: str
    amounts: dict[str, int]  # qbo invoice id -> amount applied by this version
    previous: dict[str, int] | None  # the same for the version applied before, if any
    credit_memo_ids: tuple[str, ...]
    time: datetime | None  # when the payment was made in QBO, for the mirror window
    money: int = 0  # the money applied (total less unapplied) of this or the last version

    @property
    def id(self) -> str:
        return self.payment.qbo_payment_id

    @property
    def token(self) -> str:
        return self.payment.sync_token

    @property
    def state(self) -> EntityState:
        return self.payment.state

    @property
    def funded_by_credit(self) -> bool:
        """The invoice lines are paid with credit memos, not money."""
        return bool(self.credit_memo_ids) and self.money <= 0

    def describe(self) -> str:
        if self.state is not EntityState.ACTIVE:
            return f"QBO payment {self.id} ({self.state.value})"
        return f"QBO payment {self.id}"


async def apply_payment(
    session: AsyncSession, tenant_id: str, realm_id: str, payment: PaymentIn, source: Source
) -> list[Decision]:
    journal = await Journal.open(session, source)
    inserted = await session.execute(
        pg_insert(QboPaymentSeen)
        .values(
            tenant_id=tenant_id,
            realm_id=realm_id,
            qbo_payment_id=payment.qbo_payment_id,
            sync_token="",
            state="",
            currency_code=payment.currency,
            total_minor_units=0,
            unapplied_minor_units=0,
            qbo_customer_id=payment.qbo_customer_id,
            invoice_amounts={},
            credit_memo_ids=[],
            paused_placement_ids=[],
            first_seen_at=journal.now,
            updated_at=journal.now,
        )
        .on_conflict_do_nothing()
        .returning(QboPaymentSeen.qbo_payment_id)
    )
    first_sight = inserted.first() is not None
    record = (
        await session.execute(
            select(QboPaymentSeen)
            .where(
                QboPaymentSeen.tenant_id == tenant_id,
                QboPaymentSeen.realm_id == realm_id,
                QboPaymentSeen.qbo_payment_id == payment.qbo_payment_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()

    if not first_sight:
        order = version_order(record.sync_token, record.state, payment.sync_token, payment.state)
        if order <= 0:
            return await _replay(journal, tenant_id, realm_id, record, stale=order < 0)
    gone: list[Decision] = []
    if payment.state is not EntityState.ACTIVE and first_sight:
        # Gone before we ever read it; only an invoice version can have counted it.
        gone = await _unread_payment_gone(journal, tenant_id, realm_id, payment)
    if payment.state is EntityState.DELETED and first_sight:
        record.sync_token, record.state = payment.sync_token, payment.state.value
        record.updated_at = journal.now
        await journal.close()
        return gone

    facts = _payment_facts(payment, record, first_sight)
    invoice_ids = list(dict.fromkeys([*facts.amounts, *(facts.previous or {})]))
    conditions: list[Any] = []
    if invoice_ids:
        conditions.append(
            and_(
                Placement.tenant_id == tenant_id,
                Placement.realm_id == realm_id,
                Placement.qbo_invoice_id.in_(invoice_ids),
            )
        )
    unapplied = payment.state is EntityState.ACTIVE and payment.unapplied > 0
    if unapplied and payment.qbo_customer_id:
        conditions.append(
            and_(
                Placement.tenant_id == tenant_id,
                Placement.realm_id == realm_id,
                Placement.qbo_customer_id == payment.qbo_customer_id,
                Placement.status == Status.ACTIVE.value,
            )
        )
    if record.paused_placement_ids:
        conditions.append(Placement.placement_id.in_(record.paused_placement_ids))
    placements = await _lock_placements(session, *conditions)
    by_invoice = {
        p.qbo_invoice_id: p
        for p in placements
        if p.tenant_id == tenant_id and p.realm_id == realm_id
    }

    by_placement = {p.placement_id: p for p in by_invoice.values()}
    decisions: list[Decision] = gone
    decided: set[str] = set()
    for invoice_id in invoice_ids:
        placement = by_invoice.get(invoice_id)
        if placement is None:
            decisions.append(
                _decision(
                    None,
                    invoice_id,
                    Outcome.NO_PLACEMENT,
                    f"{facts.describe()} applies "
                    f"{format_money(facts.amounts.get(invoice_id, 0), facts.currency)} to "
                    f"invoice {invoice_id}, which is not placed",
                )
            )
            continue
        previous = None if facts.previous is None else facts.previous.get(invoice_id)
        decisions.append(await _apply_line(journal, placement, facts, previous))
        decided.add(placement.placement_id)

    paused = list(record.paused_placement_ids)
    if unapplied:
        candidates = [
            p
            for p in placements
            if p.placement_id not in decided
            and p.qbo_customer_id == payment.qbo_customer_id
            and p.tenant_id == tenant_id
            and p.realm_id == realm_id
        ]
        for decision in await _pause_for_unapplied(journal, candidates, facts):
            decisions.append(decision)
            decided.add(decision.placement_id)
            if decision.outcome is Outcome.PAUSED_UNAPPLIED_PAYMENT:
                paused.append(decision.placement_id)
    for placement in placements:
        if (
            placement.placement_id in record.paused_placement_ids
            and placement.placement_id not in decided
        ):
            decisions.append(
                _decision(
                    placement,
                    "",
                    Outcome.DUPLICATE_NO_CHANGE,
                    f"{facts.describe()} changed; the placement it paused stays "
                    f"{placement.status} until a human reviews it",
                )
            )

    record.sync_token = payment.sync_token or record.sync_token
    record.state = payment.state.value
    record.currency_code = facts.currency
    if payment.state is not EntityState.DELETED:
        record.total_minor_units = payment.total
        record.unapplied_minor_units = payment.unapplied
        record.qbo_customer_id = payment.qbo_customer_id or record.qbo_customer_id
        record.credit_memo_ids = list(facts.credit_memo_ids)
        record.qbo_created_at = payment.create_time or record.qbo_created_at
    # Invoices linked before keep a 0 entry, so replays and later versions still find them.
    record.invoice_amounts = {**dict.fromkeys(facts.previous or {}, 0), **facts.amounts}
    record.paused_placement_ids = list(dict.fromkeys(paused))
    record.qbo_updated_at = payment.last_updated or record.qbo_updated_at
    record.updated_at = journal.now
    for n, decision in enumerate(decisions):
        placement = by_placement.get(decision.placement_id)
        if placement is not None and (
            paused_now := await _pause_if_unapplied_covers(journal, placement)
        ):
            decisions[n] = paused_now
    await journal.close()
    return decisions


def _payment_facts(payment: PaymentIn, record: QboPaymentSeen, first_sight: bool) -> _PaymentFacts:
    amounts: dict[str, int] = {}
    credit_memos: list[str] = []
    if payment.state is EntityState.ACTIVE:
        for line in payment.lines:
            if line.linked_type is LinkType.INVOICE:
                amounts[line.linked_txn_id] = amounts.get(line.linked_txn_id, 0) + line.amount
            elif line.linked_type is LinkType.CREDIT_MEMO:
                credit_memos.append(line.linked_txn_id)
    deleted = payment.state is EntityState.DELETED
    active = payment.state is EntityState.ACTIVE
    return _PaymentFacts(
        payment=payment,
        currency=record.currency_code if deleted else payment.currency,
        amounts=amounts,
        previous=None if first_sight else dict(record.invoice_amounts),
        # A voided or deleted payment keeps what it was: a credit memo application stays one.
        credit_memo_ids=tuple(dict.fromkeys(credit_memos))
        if active
        else tuple(record.credit_memo_ids),
        time=payment.create_time or record.qbo_created_at or payment.last_updated,
        money=payment.total - payment.unapplied
        if active
        else record.total_minor_units - record.unapplied_minor_units,
    )


async def _replay(
    journal: Journal, tenant_id: str, realm_id: str, record: QboPaymentSeen, *, stale: bool
) -> list[Decision]:
    """The same (or an older) version again: nothing changes; say what each placement is."""
    session = journal.session
    invoice_ids = list(record.invoice_amounts)
    conditions: list[Any] = []
    if invoice_ids:
        conditions.append(
            and_(
                Placement.tenant_id == tenant_id,
                Placement.realm_id == realm_id,
                Placement.qbo_invoice_id.in_(invoice_ids),
            )
        )
    if record.paused_placement_ids:
        conditions.append(Placement.placement_id.in_(record.paused_placement_ids))
    placements = (
        list((await session.execute(select(Placement).where(or_(*conditions)))).scalars())
        if conditions
        else []
    )
    by_invoice = {p.qbo_invoice_id: p for p in placements}
    what = "an older version" if stale else f"version {record.sync_token or record.state}"
    decisions: list[Decision] = []
    for invoice_id in invoice_ids:
        placement = by_invoice.get(invoice_id)
        if placement is None:
            decisions.append(
                _decision(
                    None,
                    invoice_id,
                    Outcome.NO_PLACEMENT,
                    f"invoice {invoice_id} of QBO payment {record.qbo_payment_id} is not placed",
                )
            )
    for placement in sorted(placements, key=lambda p: p.placement_id):
        if await _active_exclusion(session, placement.placement_id, record.qbo_payment_id):
            outcome = Outcome.EXCLUDED_AFTER_RESTORE
            detail = (
                f"QBO payment {record.qbo_payment_id} was excluded from this placement by a "
                "restore and has not changed in QBO since; ignored"
            )
        else:
            outcome = Outcome.DUPLICATE_NO_CHANGE
            detail = (
                f"QBO payment {record.qbo_payment_id}: {what} was already applied; nothing changed"
            )
        decisions.append(_decision(placement, "", outcome, detail))
    await journal.close()
    return decisions


async def _apply_line(
    journal: Journal, placement: Placement, facts: _PaymentFacts, previous: int | None
) -> Decision:
    """One payment's amount for one placed invoice, following the rules table."""
    session = journal.session
    tol = journal.tolerance
    invoice_id = placement.qbo_invoice_id
    amount = facts.amounts.get(invoice_id, 0)
    app = await session.get(PaymentApplication, (placement.placement_id, facts.id))
    fresh = app is None
    if app is None:
        app = _baseline(journal, placement, facts, previous, amount)
        session.add(app)
    # A line that first appears now but which the invoice balance already reflects.
    reflected_already = fresh and app.reflected_minor_units > 0
    prior_amount = app.amount_minor_units

    def track_qbo(new_amount: int) -> None:
        placement.qbo_balance_minor_units = max(
            0, placement.qbo_balance_minor_units - (new_amount - app.reflected_minor_units)
        )
        app.reflected_minor_units = new_amount
        app.amount_minor_units = new_amount
        app.updated_at = journal.now

    facts_details: dict[str, Any] = {
        "qbo_payment_id": facts.id,
        "sync_token": facts.token,
        "payment_state": facts.state.value,
        "line_amount_minor_units": amount,
        "previous_line_amount_minor_units": prior_amount,
        "payment_currency_code": facts.currency,
    }
    if facts.credit_memo_ids:
        facts_details["credit_memo_ids"] = list(facts.credit_memo_ids)
    if facts.state is EntityState.ACTIVE and facts.payment.unapplied > 0:
        facts_details["unapplied_minor_units"] = facts.payment.unapplied

    # Restore: the payment stays excluded until QBO changes it again.
    exclusion = await _active_exclusion(session, placement.placement_id, facts.id)
    if exclusion is not None and fresh:
        # Excluded before it was read: the restore already took back what it had counted.
        app.counted_minor_units = 0
    if exclusion is not None:
        if _exclusion_holds(exclusion, facts.token, facts.payment.last_updated):
            track_qbo(amount)
            if exclusion.sync_token is None:
                exclusion.sync_token = facts.token
            app.counted_minor_units = 0
            return _decision(
                placement,
                invoice_id,
                Outcome.EXCLUDED_AFTER_RESTORE,
                f"{facts.describe()} was excluded from this placement by a restore and has not "
                "changed in QBO since; ignored",
            )
        exclusion.lifted_at = journal.now
        journal.audit(
            placement,
            "placement.exclusion_lifted",
            f"{facts.describe()} changed in QBO after the restore (sync token "
            f"{exclusion.sync_token} -> {facts.token}); it is matched again",
            facts_details,
        )

    # Currency mismatch: amounts cannot be compared; a human decides.
    if amount > 0 and facts.currency != placement.currency_code:
        app.amount_minor_units = amount
        app.updated_at = journal.now
        reason = (
            f"{facts.describe()} of {format_money(amount, facts.currency)} is in "
            f"{facts.currency}, the placement is in {placement.currency_code}; review before "
            "outreach resumes"
        )
        if Status(placement.status) is Status.ACTIVE:
            change = _Change(
                Outcome.PAUSED_CURRENCY_MISMATCH,
                reason,
                "placement.paused_currency_mismatch",
                status=Status.PAUSED_PENDING_REVIEW,
                review_reason=reason,
                cause=(facts.id, facts.token),
                details=facts_details,
            )
            return _decide(journal, placement, change, invoice_id)
        return _decision(
            placement,
            invoice_id,
            Outcome.PAUSED_CURRENCY_MISMATCH
            if Status(placement.status) in REVIEW
            else Outcome.DUPLICATE_NO_CHANGE,
            f"{reason} (placement already {placement.status})",
        )

    # The QBO record of one of our portal payments: nothing is counted twice.
    newly_mirrored: PortalPayment | None = None
    if (
        (fresh and previous is None)
        and app.mirror_portal_payment_id is None
        and amount > 0
        and not facts.funded_by_credit
        and facts.currency == placement.currency_code
    ):
        newly_mirrored = await _find_portal_mirror(journal, placement, amount, facts.time)
        if newly_mirrored is not None:
            app.mirror_portal_payment_id = newly_mirrored.portal_payment_id
            newly_mirrored.mirrored_by_qbo_payment_id = facts.id

    kind = KIND_CREDIT_MEMO if facts.funded_by_credit else KIND_PAYMENT
    if app.kind != kind:
        if app.kind == KIND_PAYMENT and app.mirror_portal_payment_id is None:
            placement.oob_paid_minor_units -= app.counted_minor_units
        app.kind = kind
        if kind == KIND_PAYMENT and app.mirror_portal_payment_id is None:
            placement.oob_paid_minor_units += app.counted_minor_units
    mirror = app.mirror_portal_payment_id is not None

    if mirror:
        target = 0
        if newly_mirrored is not None and app.counted_minor_units:
            placement.oob_paid_minor_units -= app.counted_minor_units
    else:
        target = min(amount, placement.balance_minor_units + app.counted_minor_units)
    delta = target - app.counted_minor_units  # > 0 reduces what is owed
    if kind == KIND_PAYMENT and not mirror:
        placement.oob_paid_minor_units += delta
    app.counted_minor_units = target
    track_qbo(amount)
    new_balance = placement.balance_minor_units - delta
    status = Status(placement.status)
    left = _money(placement, max(0, new_balance))
    removed = facts.state is not EntityState.ACTIVE
    edit = not fresh or reflected_already or previous is not None
    details = {**facts_details, "applied_minor_units": delta, "counted_minor_units": target}
    # What this version brings beyond what the placement owed (a double or over payment).
    brought = amount - prior_amount
    excess = brought - delta if kind == KIND_PAYMENT and not mirror and brought > 0 else 0
    flagged = ""
    if excess > 0:
        details["excess_minor_units"] = excess
    if excess > 0 and (status is not Status.ACTIVE or excess > tol):
        flagged = (
            await _flag_double_payment(
                journal,
                placement,
                qbo_payment_id=facts.id,
                amount=brought,
                excess=excess,
                unapplied=facts.payment.unapplied,
                previous=status,
                owed=placement.balance_minor_units,
            )
            or ""
        )
    if removed and prior_amount > 0 and placement.review_flag:
        await _audit_double_payment_removed(journal, placement, facts, details)
    if flagged and status is not Status.ACTIVE:
        # Already stopped (or paused) by something else: recorded and flagged, nothing resumes.
        change = _double_payment_change(flagged, new_balance, details, delta != 0)
        return _decide(journal, placement, change, invoice_id)

    if mirror:
        portal_id = app.mirror_portal_payment_id
        if newly_mirrored is None and delta == 0 and amount == prior_amount:
            return _decision(placement, invoice_id, Outcome.DUPLICATE_NO_CHANGE, "nothing changed")
        if newly_mirrored is not None:
            # The portal payment may not have counted in full (it looked like an overpayment
            # while this payment was counted): now that they are one, it does.
            extra = min(
                newly_mirrored.amount_minor_units - newly_mirrored.applied_minor_units,
                max(0, new_balance),
            )
            newly_mirrored.applied_minor_units += extra
            new_balance -= extra
            left = _money(placement, max(0, new_balance))
        return _decide(
            journal,
            placement,
            await _mirror_change(
                journal,
                placement,
                new_balance,
                f"{facts.describe()} of {_money(placement, amount)} to invoice {invoice_id} is "
                f"the creditor's record of portal payment {portal_id}; not counted again, "
                f"{left} left",
                "placement.payment_mirrors_portal",
                {**details, "portal_payment_id": portal_id},
            ),
            invoice_id,
        )

    # A payment that resolved the placement is voided, deleted or reduced: a human decides.
    if (status in TERMINAL and new_balance > tol and delta < 0) or (
        removed and placement.cause_qbo_payment_id == facts.id and status in TERMINAL
    ):
        verb = facts.state.value if removed else "reduced"
        reason = (
            f"{_applier(facts, kind)}, applied to invoice {invoice_id} after which the "
            f"placement was {status.value}, was {verb} in QBO; {left} owed again. Outreach "
            "stays stopped until a human reviews it"
        )
        if status is Status.RESOLVED_OUT_OF_BAND:
            # The payment behind the resolution no longer stands: no out-of-band fee for it.
            await _reclassify_oob_resolutions(journal, placement, "reclassified_at")
        return _decide(
            journal,
            placement,
            _Change(
                Outcome.FLAGGED_FOR_REVIEW,
                reason,
                "placement.flagged_for_review",
                status=Status.NEEDS_REVIEW,
                balance=new_balance,
                review_reason=reason,
                cause=(facts.id, facts.token),
                details=details,
            ),
            invoice_id,
        )

    if delta == 0:
        if (
            reflected_already
            and status is Status.RESOLVED_OUT_OF_BAND
            and kind == KIND_CREDIT_MEMO
            and placement.resolving_qbo_payment_id == facts.id
            and placement.oob_paid_minor_units > tol
        ):
            # The invoice told us first; the payment shows the last part was a credit memo,
            # but money was paid out of band before: still paid out of band, for that money.
            return await _correct_oob_resolution(journal, placement, facts, details)
        if (
            reflected_already
            and status is Status.RESOLVED_OUT_OF_BAND
            and kind == KIND_CREDIT_MEMO
            and placement.resolving_qbo_payment_id == facts.id
        ):
            # The invoice told us first; the payment shows it was a credit memo.
            reason = _credit_memo_reason(facts, invoice_id)
            await _reclassify_oob_resolutions(journal, placement, "reclassified_at")
            return _decide(
                journal,
                placement,
                _Change(
                    Outcome.CLOSED_BALANCE_ZERO,
                    reason,
                    "placement.closed_balance_zero",
                    status=Status.CLOSED,
                    resolution_reason=reason,
                    resolving_payment_id="",
                    details=details,
                ),
                invoice_id,
            )
        if reflected_already or (previous is not None and fresh):
            detail = (
                f"{facts.describe()} was already reflected in invoice {invoice_id}'s balance; "
                "nothing changed"
            )
        else:
            detail = f"{facts.describe()} changes nothing for invoice {invoice_id}"
        return _decide(
            journal,
            placement,
            _Change(
                Outcome.DUPLICATE_NO_CHANGE,
                detail,
                "placement.payment_recorded",
                details=details,
                audit=False,
            ),
            invoice_id,
        )

    verb = "applied" if delta > 0 else "took back"
    detail = (
        f"{_applier(facts, kind)} {verb} {_money(placement, abs(delta))} "
        f"{'to' if delta > 0 else 'from'} invoice {invoice_id}; {left} left"
    )
    if delta > 0 and new_balance <= tol and status not in TERMINAL:
        # Cleared by a credit after money was paid out of band: paid out of band (for the
        # money paid), whichever came first; only a balance cleared without money closes.
        if kind == KIND_CREDIT_MEMO and placement.oob_paid_minor_units <= tol:
            reason = _credit_memo_reason(facts, invoice_id)
            change = _Change(
                Outcome.CLOSED_BALANCE_ZERO,
                f"{detail}; {reason}",
                "placement.closed_balance_zero",
                status=Status.CLOSED,
                balance=new_balance,
                resolution_reason=reason,
                cause=(facts.id, facts.token),
                details=details,
            )
            return _decide(journal, placement, change, invoice_id)
        payer = facts.id if kind == KIND_PAYMENT else await _money_payment(journal, placement)
        if kind == KIND_CREDIT_MEMO:
            detail = f"{detail}; {_credit_memo_reason(facts, invoice_id, partial=True)}"
        change = _Change(
            Outcome.RESOLVED_OUT_OF_BAND,
            detail,
            "placement.resolved_out_of_band",
            status=Status.RESOLVED_OUT_OF_BAND,
            balance=new_balance,
            resolution_reason=PAID_OUT_OF_BAND,
            resolving_payment_id=payer,
            cause=(facts.id, facts.token),
            details=details,
        )
        decision = _decide(journal, placement, change, invoice_id)
        _record_oob_resolution(journal, placement, payer)
        return decision

    if edit and (prior_amount != amount or removed):
        outcome = Outcome.EDIT_DIFFERENCE_APPLIED
        action = "placement.payment_edit_applied"
    elif kind == KIND_CREDIT_MEMO:
        outcome = Outcome.BALANCE_UPDATED
        action = "placement.balance_updated"
        detail = f"{detail}; {_credit_memo_reason(facts, invoice_id, partial=True)}"
    else:
        outcome = Outcome.PARTIAL_PAYMENT
        action = "placement.partial_payment"
    return _decide(
        journal,
        placement,
        _Change(outcome, detail, action, balance=new_balance, details=details),
        invoice_id,
    )


async def _mirror_change(
    journal: Journal,
    placement: Placement,
    new_balance: int,
    detail: str,
    action: str,
    details: dict[str, Any],
) -> _Change:
    """A QBO payment and a portal payment are the same money: if that pays the placement, it
    was paid through the portal (never out of band); otherwise only the balance follows."""
    status = Status(placement.status)
    if new_balance <= journal.tolerance and status not in {
        Status.RESOLVED_PAID_PORTAL,
        Status.CLOSED,
    }:
        if status is Status.RESOLVED_OUT_OF_BAND:
            await _reclassify_oob_resolutions(journal, placement, "reclassified_at")
        return _Change(
            Outcome.MIRRORS_PORTAL_PAYMENT,
            detail,
            action,
            status=Status.RESOLVED_PAID_PORTAL,
            balance=new_balance,
            resolution_reason=PAID_THROUGH_PORTAL,
            resolving_payment_id="",
            cause=("", None),
            details=details,
        )
    return _Change(
        Outcome.MIRRORS_PORTAL_PAYMENT, detail, action, balance=new_balance, details=details
    )


def _applier(facts: _PaymentFacts, kind: str) -> str:
    """Who applies the amount: a payment's money, or credit memos (through a QBO payment)."""
    if kind == KIND_CREDIT_MEMO and facts.credit_memo_ids:
        memos = ", ".join(facts.credit_memo_ids)
        return f"credit memo {memos} (through QBO payment {facts.id})"
    return facts.describe()


def _credit_memo_reason(facts: _PaymentFacts, invoice_id: str, *, partial: bool = False) -> str:
    memos = ", ".join(facts.credit_memo_ids)
    what = "reduced" if partial else "reduced to zero"
    return (
        f"invoice {invoice_id}'s balance {what} in QBO by credit memo {memos} "
        f"(applied by QBO payment {facts.id}), not by a payment"
    )


async def _unread_payment_gone(
    journal: Journal, tenant_id: str, realm_id: str, payment: PaymentIn
) -> list[Decision]:
    """A payment deleted or voided before we read it, which an invoice version showed and
    which resolved a placement (counted from the invoice's drop): what it paid is unknown
    and the resolution no longer stands. Outreach stays stopped; a human decides."""
    placements = await _lock_placements(
        journal.session,
        and_(
            Placement.tenant_id == tenant_id,
            Placement.realm_id == realm_id,
            Placement.cause_qbo_payment_id == payment.qbo_payment_id,
            Placement.status == Status.RESOLVED_OUT_OF_BAND.value,
        ),
    )
    decisions = []
    for placement in placements:
        balance = placement.balance_minor_units
        if placement.restore_balance_minor_units is not None:
            balance = max(balance, placement.restore_balance_minor_units)
        back = balance - placement.balance_minor_units
        placement.oob_paid_minor_units = max(0, placement.oob_paid_minor_units - back)
        placement.unseen_paid_minor_units = max(0, placement.unseen_paid_minor_units - back)
        await _reclassify_oob_resolutions(journal, placement, "reclassified_at")
        reason = (
            f"QBO payment {payment.qbo_payment_id}, which invoice "
            f"{placement.qbo_invoice_id}'s balance showed before the payment was read and "
            f"after which the placement was {placement.status}, was "
            f"{payment.state.value} in QBO before it was read; "
            f"{_money(placement, balance)} owed again. Outreach stays stopped until a human "
            "reviews it"
        )
        decisions.append(
            _decide(
                journal,
                placement,
                _Change(
                    Outcome.FLAGGED_FOR_REVIEW,
                    reason,
                    "placement.flagged_for_review",
                    status=Status.NEEDS_REVIEW,
                    balance=balance,
                    review_reason=reason,
                    cause=(payment.qbo_payment_id, payment.sync_token),
                    details={
                        "qbo_payment_id": payment.qbo_payment_id,
                        "sync_token": payment.sync_token,
                        "payment_state": payment.state.value,
                    },
                ),
            )
        )
    return decisions


async def _money_payment(journal: Journal, placement: Placement) -> str:
    """The QBO payment that most recently counted money paid out of band on the placement."""
    row = await journal.session.execute(
        select(PaymentApplication.qbo_payment_id)
        .where(
            PaymentApplication.placement_id == placement.placement_id,
            PaymentApplication.kind == KIND_PAYMENT,
            PaymentApplication.mirror_portal_payment_id.is_(None),
            PaymentApplication.counted_minor_units > 0,
        )
        .order_by(PaymentApplication.updated_at.desc(), PaymentApplication.qbo_payment_id.desc())
        .limit(1)
    )
    return row.scalar_one_or_none() or placement.resolving_qbo_payment_id


async def _correct_oob_resolution(
    journal: Journal, placement: Placement, facts: _PaymentFacts, details: dict[str, Any]
) -> Decision:
    """A resolution first explained by a payment not read yet, which turns out to be a credit
    memo, while money was also paid out of band: it stands, for the money and its payer."""
    payer = await _money_payment(journal, placement)
    await _update_open_oob_resolutions(
        journal,
        placement,
        {"amount_minor_units": placement.oob_paid_minor_units, "qbo_payment_id": payer},
    )
    detail = (
        f"{_credit_memo_reason(facts, placement.qbo_invoice_id, partial=True)}; the rest was "
        f"paid out of band ({_money(placement, placement.oob_paid_minor_units)}, QBO payment "
        f"{payer})"
    )
    return _decide(
        journal,
        placement,
        _Change(
            Outcome.DUPLICATE_NO_CHANGE,
            detail,
            "placement.resolution_corrected",
            resolving_payment_id=payer,
            details={**details, "oob_paid_minor_units": placement.oob_paid_minor_units},
        ),
        placement.qbo_invoice_id,
    )


def _baseline(
    journal: Journal,
    placement: Placement,
    facts: _PaymentFacts,
    previous: int | None,
    amount: int,
) -> PaymentApplication:
    """The first application of a payment to a placement, with what is already reflected.

    A payment the latest invoice version links (the intake's version until another one is
    applied) is already part of the balance we hold: it is counted without changing it.
    """
    already = 0
    counted = 0
    if previous is not None:
        already = counted = previous
    elif facts.id in placement.qbo_linked_payment_ids:
        already = counted = amount
        pending = placement.mirror_pending_minor_units
        if pending > 0 and pending + journal.tolerance >= amount:
            # The invoice's drop was presumed to be a portal payment's mirror, not counted.
            placement.mirror_pending_minor_units = max(0, pending - amount)
            counted = 0
        else:
            placement.unseen_paid_minor_units = max(0, placement.unseen_paid_minor_units - amount)
    # Any other payment is new to the balance: the intake's and each later invoice version's
    # links (QBO's own record of what its balance includes) decide, never timestamps, which
    # have one-second resolution and cannot order a payment made in the intake second.
    return PaymentApplication(
        placement_id=placement.placement_id,
        qbo_payment_id=facts.id,
        amount_minor_units=already,
        counted_minor_units=counted,
        reflected_minor_units=already,
        kind=KIND_PAYMENT,
        mirror_portal_payment_id=None,
        created_at=journal.now,
        updated_at=journal.now,
    )


async def _find_portal_mirror(
    journal: Journal, placement: Placement, amount: int, when: datetime | None
) -> PortalPayment | None:
    if when is None:
        return None
    candidates = (
        await journal.session.execute(
            select(PortalPayment).where(
                PortalPayment.placement_id == placement.placement_id,
                PortalPayment.mirrored_by_qbo_payment_id.is_(None),
            )
        )
    ).scalars()
    matching = [
        q
        for q in candidates
        if abs(q.amount_minor_units - amount) <= journal.tolerance
        and abs(q.pay_time - when) <= journal.window
    ]
    return min(matching, key=lambda q: abs(q.pay_time - when), default=None)


async def _pause_for_unapplied(
    journal: Journal, candidates: list[Placement], facts: _PaymentFacts
) -> list[Decision]:
    """An unapplied payment from a customer whose active placements it covers (at least
    their balance): pause pending review (a likely payment exists); never resolve on this
    evidence."""
    tol = journal.tolerance
    unapplied = facts.payment.unapplied
    active = [
        p
        for p in candidates
        if Status(p.status) is Status.ACTIVE and p.currency_code == facts.currency
    ]
    decisions: list[Decision] = []
    eligible: list[Placement] = []
    for placement in active:
        exclusion = await _active_exclusion(journal.session, placement.placement_id, facts.id)
        if exclusion is not None:
            if _exclusion_holds(exclusion, facts.token, facts.payment.last_updated):
                decisions.append(
                    _decision(
                        placement,
                        "",
                        Outcome.EXCLUDED_AFTER_RESTORE,
                        f"{facts.describe()} was excluded from this placement by a restore "
                        "and has not changed in QBO since; ignored",
                    )
                )
                continue
            exclusion.lifted_at = journal.now
        eligible.append(placement)
    # Unapplied money that covers what a placement is owed may well be its payment (also
    # when it is more: an overpayment, or several invoices paid at once); when in doubt,
    # pause. Only the amount and the customer decide, so the order in which payments are
    # read cannot change the outcome (see _pause_if_unapplied_covers).
    for placement in eligible:
        if placement.balance_minor_units <= unapplied + tol:
            decisions.append(
                _pause_unapplied(
                    journal,
                    placement,
                    facts.id,
                    facts.token,
                    unapplied,
                    facts.currency,
                    facts.payment.qbo_customer_id,
                    facts.describe(),
                )
            )
    return decisions


def _pause_unapplied(
    journal: Journal,
    placement: Placement,
    payment_id: str,
    token: str,
    unapplied: int,
    currency: str,
    customer_id: str,
    what: str,
) -> Decision:
    reason = (
        f"{what} from customer {customer_id} has {format_money(unapplied, currency)} "
        f"unapplied, at least what this placement's invoice is owed "
        f"({_money(placement, placement.balance_minor_units)}): a payment likely exists. "
        "Review before outreach resumes"
    )
    return _decide(
        journal,
        placement,
        _Change(
            Outcome.PAUSED_UNAPPLIED_PAYMENT,
            reason,
            "placement.paused_unapplied_payment",
            status=Status.PAUSED_PENDING_REVIEW,
            review_reason=reason,
            cause=(payment_id, token),
            details={
                "qbo_payment_id": payment_id,
                "sync_token": token,
                "unapplied_minor_units": unapplied,
                "payment_currency_code": currency,
                "qbo_customer_id": customer_id,
            },
        ),
    )


async def _pause_if_unapplied_covers(journal: Journal, placement: Placement) -> Decision | None:
    """An active placement whose balance fell (or that was just decided) is paused when an
    unapplied payment already seen from its customer covers what is left: the same rule as
    when the unapplied payment is read, whichever of the two the matcher learns first."""
    if Status(placement.status) is not Status.ACTIVE or not placement.qbo_customer_id:
        return None
    records = (
        await journal.session.execute(
            select(QboPaymentSeen)
            .where(
                QboPaymentSeen.tenant_id == placement.tenant_id,
                QboPaymentSeen.realm_id == placement.realm_id,
                QboPaymentSeen.qbo_customer_id == placement.qbo_customer_id,
                QboPaymentSeen.state == EntityState.ACTIVE.value,
                QboPaymentSeen.currency_code == placement.currency_code,
                QboPaymentSeen.unapplied_minor_units
                >= placement.balance_minor_units - journal.tolerance,
            )
            .order_by(QboPaymentSeen.qbo_payment_id)
        )
    ).scalars()
    for record in records:
        if record.unapplied_minor_units <= 0 or record.invoice_amounts.get(
            placement.qbo_invoice_id
        ):
            continue  # a payment applied to this invoice was decided as such
        exclusion = await _active_exclusion(
            journal.session, placement.placement_id, record.qbo_payment_id
        )
        if exclusion is not None and _exclusion_holds(
            exclusion, record.sync_token, record.qbo_updated_at
        ):
            continue
        return _pause_unapplied(
            journal,
            placement,
            record.qbo_payment_id,
            record.sync_token,
            record.unapplied_minor_units,
            record.currency_code,
            record.qbo_customer_id,
            f"QBO payment {record.qbo_payment_id}",
        )
    return None


# ---------------------------------------------------------------------------------------
# ApplyAccountingInvoice
# ---------------------------------------------------------------------------------------


async def apply_invoice(
    session: AsyncSession, tenant_id: str, realm_id: str, invoice: InvoiceIn, source: Source
) -> list[Decision]:
    journal = await Journal.open(session, source)
    locked = await _lock_placements(
        session,
        and_(
            Placement.tenant_id == tenant_id,
            Placement.realm_id == realm_id,
            Placement.qbo_invoice_id == invoice.qbo_invoice_id,
        ),
    )
    if not locked:
        await journal.close()
        return [
            _decision(
                None,
                invoice.qbo_invoice_id,
                Outcome.NO_PLACEMENT,
                f"invoice {invoice.qbo_invoice_id} is not placed",
            )
        ]
    placement = locked[0]
    order = version_order(
        placement.qbo_invoice_sync_token,
        placement.qbo_invoice_state,
        invoice.sync_token,
        invoice.state,
    )
    if order <= 0:
        await journal.close()
        what = "an older version" if order < 0 else f"version {invoice.sync_token or 'deleted'}"
        return [
            _decision(
                placement,
                invoice.qbo_invoice_id,
                Outcome.DUPLICATE_NO_CHANGE,
                f"invoice {invoice.qbo_invoice_id}: {what} was already applied; nothing changed",
            )
        ]
    decision = await _apply_invoice_version(journal, placement, invoice)
    decision = await _pause_if_unapplied_covers(journal, placement) or decision
    placement.qbo_invoice_sync_token = invoice.sync_token or placement.qbo_invoice_sync_token
    placement.qbo_invoice_state = invoice.state.value
    placement.qbo_invoice_updated_at = invoice.last_updated or placement.qbo_invoice_updated_at
    await journal.close()
    return [decision]


async def _apply_invoice_version(
    journal: Journal, placement: Placement, invoice: InvoiceIn
) -> Decision:
    tol = journal.tolerance
    status = Status(placement.status)
    invoice_id = invoice.qbo_invoice_id
    base_details: dict[str, Any] = {
        "sync_token": invoice.sync_token,
        "invoice_state": invoice.state.value,
        "qbo_balance_minor_units": invoice.balance,
        "qbo_total_minor_units": invoice.total,
        "linked_txns": [f"{t.txn_type.value}:{t.txn_id}" for t in invoice.linked],
    }

    if invoice.state is not EntityState.ACTIVE:
        if invoice.state is EntityState.VOIDED:
            placement.qbo_balance_minor_units = 0
            placement.qbo_total_minor_units = 0
        reason = (
            f"invoice {invoice_id} was {invoice.state.value} in QBO; review before outreach resumes"
        )
        if status in TERMINAL:
            return _decision(
                placement,
                invoice_id,
                Outcome.DUPLICATE_NO_CHANGE,
                f"invoice {invoice_id} was {invoice.state.value} in QBO; the placement is "
                f"already {status.value}",
            )
        return _decide(
            journal,
            placement,
            _Change(
                Outcome.PAUSED_INVOICE_VOIDED,
                reason,
                f"placement.paused_invoice_{invoice.state.value}",
                status=Status.PAUSED_PENDING_REVIEW,
                review_reason=reason,
                cause=("", None),
                details=base_details,
            ),
            invoice_id,
        )

    if invoice.currency != placement.currency_code:
        reason = (
            f"invoice {invoice_id} is now in {invoice.currency} in QBO, the placement is in "
            f"{placement.currency_code}; review before outreach resumes"
        )
        if status is not Status.ACTIVE:
            return _decision(placement, invoice_id, Outcome.PAUSED_CURRENCY_MISMATCH, reason)
        return _decide(
            journal,
            placement,
            _Change(
                Outcome.PAUSED_CURRENCY_MISMATCH,
                reason,
                "placement.paused_currency_mismatch",
                status=Status.PAUSED_PENDING_REVIEW,
                review_reason=reason,
                cause=("", None),
                details=base_details,
            ),
            invoice_id,
        )

    session = journal.session
    apps = list(
        (
            await session.execute(
                select(PaymentApplication).where(
                    PaymentApplication.placement_id == placement.placement_id
                )
            )
        ).scalars()
    )
    linked_payments = [t.txn_id for t in invoice.linked if t.txn_type is LinkType.PAYMENT]
    others = [t for t in invoice.linked if t.txn_type is not LinkType.PAYMENT]
    times = await _payment_times(session, placement, [a.qbo_payment_id for a in apps])

    # Payments we applied that this invoice version predates are not in its balance yet.
    def newer(app: PaymentApplication) -> bool:
        when = times.get(app.qbo_payment_id)
        return when is not None and invoice.last_updated is not None and when > invoice.last_updated

    not_linked = [
        a for a in apps if a.qbo_payment_id not in linked_payments and a.reflected_minor_units > 0
    ]
    pending = [a for a in not_linked if newer(a)]
    unlinked = [a for a in not_linked if not newer(a)]
    implied = max(0, invoice.balance - sum(a.reflected_minor_units for a in pending))
    drift = implied - placement.qbo_balance_minor_units  # < 0: QBO says less is owed

    known = {a.qbo_payment_id for a in apps}
    unseen = [pid for pid in linked_payments if pid not in known]
    balance_delta = 0
    removed: list[str] = []
    if unlinked and (drift > 0 or unseen):
        # QBO no longer links payments we applied (voided, deleted, moved): they no longer count.
        # Also when the version links payments not read yet, whose drop can hide the rise.
        for app in unlinked:
            drift -= app.reflected_minor_units
            balance_delta += app.counted_minor_units
            if app.kind == KIND_PAYMENT and app.mirror_portal_payment_id is None:
                placement.oob_paid_minor_units -= app.counted_minor_units
            app.amount_minor_units = app.counted_minor_units = app.reflected_minor_units = 0
            app.updated_at = journal.now
            removed.append(app.qbo_payment_id)
    mirror_pending = 0
    paid_by = ""
    unseen_excess = 0
    if drift < 0:
        drop = -drift
        if unseen:
            # A payment QBO links but we have not read yet: QBO's balance already shows it.
            paid_by = unseen[-1]
            unmirrored = await _unmirrored_portal_total(journal, placement, invoice.last_updated)
            if unmirrored > 0 and abs(unmirrored - drop) <= tol:
                mirror_pending = drop
                placement.mirror_pending_minor_units += drop
            else:
                counted = min(drop, max(0, placement.balance_minor_units + balance_delta))
                balance_delta -= drop
                placement.oob_paid_minor_units += counted
                placement.unseen_paid_minor_units += counted
                unseen_excess = drop - counted
        else:
            balance_delta -= drop
    elif drift > 0:
        balance_delta += drift

    placement.qbo_balance_minor_units = implied
    placement.qbo_total_minor_units = invoice.total
    placement.qbo_linked_payment_ids = linked_payments
    new_balance = max(0, placement.balance_minor_units + balance_delta)
    details = {
        **base_details,
        "balance_change_minor_units": new_balance - placement.balance_minor_units,
    }
    if removed:
        details["unlinked_qbo_payment_ids"] = removed
    if paid_by:
        details["qbo_payment_id"] = paid_by
        # Every payment the drop is made of (several when QBO linked more than one before
        # we read them), so each appears in the audit trail.
        details["qbo_payment_ids"] = unseen
    left = _money(placement, new_balance)

    if unseen_excess > 0 and (status is not Status.ACTIVE or unseen_excess > tol):
        # QBO shows payments not read yet that bring more than the placement owed.
        details["excess_minor_units"] = unseen_excess
        flagged = await _flag_double_payment(
            journal,
            placement,
            qbo_payment_id=", ".join(unseen),
            amount=-drift,
            excess=unseen_excess,
            unapplied=0,
            previous=status,
            owed=placement.balance_minor_units,
        )
        if flagged and status is not Status.ACTIVE:
            moved = new_balance != placement.balance_minor_units
            change = _double_payment_change(flagged, new_balance, details, moved)
            return _decide(journal, placement, change, invoice_id)
    if mirror_pending:
        return _decide(
            journal,
            placement,
            _Change(
                Outcome.MIRRORS_PORTAL_PAYMENT,
                f"invoice {invoice_id}'s balance in QBO dropped by "
                f"{_money(placement, mirror_pending)} through QBO payment {paid_by}, "
                "presumed the creditor's record of a portal payment; not counted again, "
                f"{left} left",
                "placement.payment_mirrors_portal",
                details=details,
            ),
            invoice_id,
        )
    if new_balance == placement.balance_minor_units:
        return _decide(
            journal,
            placement,
            _Change(
                Outcome.DUPLICATE_NO_CHANGE,
                f"invoice {invoice_id} version {invoice.sync_token} changes nothing for the "
                "placement (its balance is explained by payments already applied)",
                "placement.invoice_recorded",
                details=details,
                audit=False,
            ),
            invoice_id,
        )
    if balance_delta < 0 and new_balance <= tol and status not in TERMINAL:
        if paid_by or placement.oob_paid_minor_units > tol:
            # Money paid out of band (now, or before a credit cleared the rest).
            payer = paid_by or await _money_payment(journal, placement)
            how = f"QBO payment {paid_by}" if paid_by else _reducer(others)
            change = _Change(
                Outcome.RESOLVED_OUT_OF_BAND,
                f"invoice {invoice_id}'s balance in QBO is {left} after {how}",
                "placement.resolved_out_of_band",
                status=Status.RESOLVED_OUT_OF_BAND,
                balance=new_balance,
                resolution_reason=PAID_OUT_OF_BAND,
                resolving_payment_id=payer,
                cause=(paid_by, None) if paid_by else ("", None),
                details=details,
            )
            decision = _decide(journal, placement, change, invoice_id)
            _record_oob_resolution(journal, placement, payer)
            return decision
        reason = f"invoice {invoice_id}'s balance reduced to zero in QBO by {_reducer(others)}"
        return _decide(
            journal,
            placement,
            _Change(
                Outcome.CLOSED_BALANCE_ZERO,
                reason,
                "placement.closed_balance_zero",
                status=Status.CLOSED,
                balance=new_balance,
                resolution_reason=reason,
                cause=("", None),
                details=details,
            ),
            invoice_id,
        )
    if balance_delta > 0 and status in TERMINAL and new_balance > tol:
        if placement.cause_qbo_payment_id and placement.cause_qbo_payment_id in removed:
            if status is Status.RESOLVED_OUT_OF_BAND:
                await _reclassify_oob_resolutions(journal, placement, "reclassified_at")
            cause = placement.cause_qbo_payment_id
            why = (
                # Only a credit memo application closes a placement with a cause.
                f"the credit memo applied by QBO payment {cause} that closed it"
                if status is Status.CLOSED
                else f"QBO payment {cause} that resolved it"
            ) + f" no longer applies to invoice {invoice_id} in QBO (voided, deleted or moved)"
        else:
            why = (
                f"invoice {invoice_id}'s balance in QBO rose after the placement was {status.value}"
            )
        reason = f"{why}; {left} owed again. Outreach stays stopped until a human reviews it"
        return _decide(
            journal,
            placement,
            _Change(
                Outcome.FLAGGED_FOR_REVIEW,
                reason,
                "placement.flagged_for_review",
                status=Status.NEEDS_REVIEW,
                balance=new_balance,
                review_reason=reason,
                cause=("", None),
                details=details,
            ),
            invoice_id,
        )
    if paid_by and balance_delta < 0:
        outcome, action = Outcome.PARTIAL_PAYMENT, "placement.partial_payment"
        detail = (
            f"invoice {invoice_id}'s balance in QBO dropped after QBO payment {paid_by}; "
            f"{left} left"
        )
    else:
        outcome, action = Outcome.BALANCE_UPDATED, "placement.balance_updated"
        cause = _reducer(others) if balance_delta < 0 else "an edit or a payment no longer applied"
        detail = f"invoice {invoice_id}'s balance changed in QBO ({cause}); {left} owed"
    return _decide(
        journal,
        placement,
        _Change(outcome, detail, action, balance=new_balance, details=details),
        invoice_id,
    )


def _reducer(links: Iterable[Any]) -> str:
    names = {
        LinkType.CREDIT_MEMO: "credit memo",
        LinkType.JOURNAL_ENTRY: "journal entry",
        LinkType.OTHER: "transaction",
    }
    parts = [
        f"{names.get(t.txn_type, 'transaction')} {t.txn_id}"
        # A journal entry may be a write-off; nothing in QBO says so.
        + (" (a write-off or another adjustment)" if t.txn_type is LinkType.JOURNAL_ENTRY else "")
        for t in links
    ]
    if not parts:
        return "a change without a linked payment (credit memo, write-off or adjustment)"
    return ", ".join(parts) + ", not a payment"


async def _payment_times(
    session: AsyncSession, placement: Placement, payment_ids: list[str]
) -> dict[str, datetime]:
    if not payment_ids:
        return {}
    rows = await session.execute(
        select(QboPaymentSeen.qbo_payment_id, QboPaymentSeen.qbo_updated_at).where(
            QboPaymentSeen.tenant_id == placement.tenant_id,
            QboPaymentSeen.realm_id == placement.realm_id,
            QboPaymentSeen.qbo_payment_id.in_(payment_ids),
        )
    )
    return {pid: when for pid, when in rows.tuples() if when is not None}


async def _unmirrored_portal_total(
    journal: Journal, placement: Placement, when: datetime | None
) -> int:
    rows = (
        await journal.session.execute(
            select(PortalPayment).where(
                PortalPayment.placement_id == placement.placement_id,
                PortalPayment.mirrored_by_qbo_payment_id.is_(None),
            )
        )
    ).scalars()
    return (
        sum(
            q.amount_minor_units
            for q in rows
            if when is None or abs(q.pay_time - when) <= journal.window
        )
        - placement.mirror_pending_minor_units
    )


# ---------------------------------------------------------------------------------------
# RecordPortalPayment
# ---------------------------------------------------------------------------------------


async def record_portal_payment(
    session: AsyncSession, payment: PortalPaymentIn
) -> tuple[Decision, Placement]:
    journal = await Journal.open(session, Source("portal"))
    decision, placement = await _record_portal_payment(journal, payment)
    await journal.close()
    return decision, placement


async def _record_portal_payment(
    journal: Journal, payment: PortalPaymentIn
) -> tuple[Decision, Placement]:
    session = journal.session
    locked = await _lock_placements(session, Placement.placement_id == payment.placement_id)
    if not locked:
        raise NotFound(f"placement {payment.placement_id} not found", reason="PLACEMENT_NOT_FOUND")
    placement = locked[0]
    existing = await session.get(PortalPayment, payment.portal_payment_id)
    if existing is not None:
        same = (
            existing.placement_id == payment.placement_id
            and existing.amount_minor_units == payment.amount.minor_units
            and existing.currency_code == payment.amount.currency
        )
        if not same:
            raise AlreadyExists(
                f"portal_payment_id {payment.portal_payment_id} was already recorded with "
                "another placement or amount",
                reason="PORTAL_PAYMENT_ID_REUSED",
            )
        decision = _decision(
            placement,
            "",
            Outcome.DUPLICATE_NO_CHANGE,
            f"portal payment {payment.portal_payment_id} was already recorded; nothing changed",
        )
        return decision, placement
    if payment.amount.currency != placement.currency_code:
        raise InvalidArgument(
            f"amount.currency_code must be the placement's currency {placement.currency_code}",
            field="amount.currency_code",
        )

    amount = payment.amount.minor_units
    tol = journal.tolerance
    portal = PortalPayment(
        portal_payment_id=payment.portal_payment_id,
        placement_id=placement.placement_id,
        tenant_id=placement.tenant_id,
        currency_code=placement.currency_code,
        amount_minor_units=amount,
        fee_minor_units=payment.fee,
        pay_time=payment.pay_time,
        applied_minor_units=0,
        mirrored_by_qbo_payment_id=None,
        recorded_at=journal.now,
    )
    session.add(portal)
    details: dict[str, Any] = {
        "portal_payment_id": payment.portal_payment_id,
        "amount_minor_units": amount,
        "pay_time": payment.pay_time.isoformat(),
    }
    status = Status(placement.status)
    mirror = await _find_qbo_mirror(journal, placement, amount, payment.pay_time)
    unseen = _unseen_mirror(journal, placement, amount, payment.pay_time)
    if mirror is not None or unseen:
        # The creditor recorded this portal payment in QBO before we did: swap, don't add.
        if mirror is not None:
            give_back = mirror.counted_minor_units
            mirror.counted_minor_units = 0
            mirror.mirror_portal_payment_id = portal.portal_payment_id
            mirror.updated_at = journal.now
            portal.mirrored_by_qbo_payment_id = mirror.qbo_payment_id
            qbo_id = mirror.qbo_payment_id
        else:
            # Known so far only from the invoice's balance: the payment, when read, is linked.
            give_back = placement.unseen_paid_minor_units
            placement.unseen_paid_minor_units = 0
            placement.mirror_pending_minor_units += give_back
            qbo_id = placement.resolving_qbo_payment_id or placement.cause_qbo_payment_id
        placement.oob_paid_minor_units -= give_back
        owed = placement.balance_minor_units + give_back
        portal.applied_minor_units = min(amount, owed)
        new_balance = owed - portal.applied_minor_units
        details["qbo_payment_id"] = qbo_id
        detail = (
            f"portal payment {payment.portal_payment_id} of {_money(placement, amount)} was "
            f"already recorded in QBO (payment {qbo_id or 'not read yet'}); not counted twice, "
            f"{_money(placement, new_balance)} left"
        )
        change = await _mirror_change(
            journal, placement, new_balance, detail, "placement.portal_payment_mirrored", details
        )
        return _decide(journal, placement, change), placement

    applied = min(amount, placement.balance_minor_units)
    portal.applied_minor_units = applied
    new_balance = placement.balance_minor_units - applied
    overpaid = amount - applied
    details["applied_minor_units"] = applied
    details["overpaid_minor_units"] = overpaid
    detail = (
        f"portal payment {payment.portal_payment_id} of {_money(placement, amount)}; "
        f"{_money(placement, new_balance)} left"
        + (f" ({_money(placement, overpaid)} overpaid)" if overpaid else "")
    )
    if status in TERMINAL:
        reason = (
            f"portal payment {payment.portal_payment_id} of {_money(placement, amount)} received "
            f"after the placement was {status.value}: possible double payment, a refund may be due"
        )
        change = _Change(
            Outcome.FLAGGED_FOR_REVIEW,
            reason,
            "placement.flagged_for_review",
            status=Status.NEEDS_REVIEW,
            balance=new_balance,
            review_reason=reason,
            cause=("", None),
            details=details,
        )
    elif new_balance <= tol:
        change = _Change(
            Outcome.RESOLVED_PAID_PORTAL,
            detail,
            "placement.resolved_paid_portal",
            status=Status.RESOLVED_PAID_PORTAL,
            balance=new_balance,
            resolution_reason=PAID_THROUGH_PORTAL,
            cause=("", None),
            details=details,
        )
    else:
        change = _Change(
            Outcome.PARTIAL_PAYMENT,
            detail,
            "placement.portal_partial_payment",
            balance=new_balance,
            details=details,
        )
    return _decide(journal, placement, change), placement


def _unseen_mirror(journal: Journal, placement: Placement, amount: int, pay_time: datetime) -> bool:
    """Whether the invoice's balance already dropped by about this amount through a QBO
    payment not read yet, close enough in time to be the creditor's record of it."""
    unseen = placement.unseen_paid_minor_units
    when = placement.qbo_invoice_updated_at
    return (
        unseen > 0
        and abs(unseen - amount) <= journal.tolerance
        and (when is None or abs(when - pay_time) <= journal.window)
    )


async def _find_qbo_mirror(
    journal: Journal, placement: Placement, amount: int, pay_time: datetime
) -> PaymentApplication | None:
    rows = await journal.session.execute(
        select(PaymentApplication, QboPaymentSeen.qbo_created_at, QboPaymentSeen.qbo_updated_at)
        .join(
            QboPaymentSeen,
            and_(
                QboPaymentSeen.tenant_id == placement.tenant_id,
                QboPaymentSeen.realm_id == placement.realm_id,
                QboPaymentSeen.qbo_payment_id == PaymentApplication.qbo_payment_id,
            ),
        )
        .where(
            PaymentApplication.placement_id == placement.placement_id,
            PaymentApplication.kind == KIND_PAYMENT,
            PaymentApplication.mirror_portal_payment_id.is_(None),
            PaymentApplication.counted_minor_units > 0,
        )
    )
    best: tuple[Any, PaymentApplication] | None = None
    for app, created, updated in rows.tuples():
        when = created or updated
        if when is None or abs(app.amount_minor_units - amount) > journal.tolerance:
            continue
        distance = abs(when - pay_time)
        if distance <= journal.window and (best is None or distance < best[0]):
            best = (distance, app)
    return best[1] if best else None


# ---------------------------------------------------------------------------------------
# RestorePlacement
# ---------------------------------------------------------------------------------------


async def restore_placement(
    session: AsyncSession, placement_id: str, expected_version: int, actor: str, reason: str
) -> Placement:
    """Support's safe restore of a wrong resolution or review flag: back to ACTIVE with the
    balance from before the resolution, the causing payment excluded until QBO changes it,
    a RESUME event (the only one the matcher ever emits) and an audit entry."""
    actor, reason = require_actor_and_reason(actor, reason)
    journal = await Journal.open(session, Source("restore"))
    placement = await _lock_reviewed(session, placement_id, expected_version)
    status = Status(placement.status)
    if status not in RESTORABLE:
        raise FailedPrecondition(
            f"placement {placement_id} is {status.value}; only resolved_out_of_band, "
            "paused_pending_review and needs_review placements can be restored",
            reason="PLACEMENT_NOT_RESTORABLE",
            metadata={"status": status.value},
        )
    old_balance = placement.balance_minor_units
    balance = old_balance
    if status is Status.RESOLVED_OUT_OF_BAND and placement.restore_balance_minor_units is not None:
        balance = placement.restore_balance_minor_units
    cause = placement.cause_qbo_payment_id
    details: dict[str, Any] = {
        "previous_status": status.value,
        "previous_balance_minor_units": old_balance,
        "expected_version": expected_version,
        "previous_resolution_reason": placement.resolution_reason,
        "previous_review_reason": placement.review_reason,
    }
    if cause:
        exclusion = await session.get(PaymentExclusion, (placement_id, cause))
        if exclusion is None:
            exclusion = PaymentExclusion(placement_id=placement_id, qbo_payment_id=cause)
            session.add(exclusion)
        exclusion.sync_token = placement.cause_sync_token
        exclusion.excluded_at = journal.now
        exclusion.excluded_by = actor
        exclusion.reason = reason
        exclusion.lifted_at = None
        app = await session.get(PaymentApplication, (placement_id, cause))
        if app is not None:
            if app.kind == KIND_PAYMENT and app.mirror_portal_payment_id is None:
                placement.oob_paid_minor_units -= app.counted_minor_units
            app.counted_minor_units = 0
            app.updated_at = journal.now
        elif status is Status.RESOLVED_OUT_OF_BAND:
            placement.oob_paid_minor_units = max(
                0, placement.oob_paid_minor_units - (balance - old_balance)
            )
            placement.unseen_paid_minor_units = max(
                0, placement.unseen_paid_minor_units - (balance - old_balance)
            )
        details["excluded_qbo_payment_id"] = cause
        details["excluded_sync_token"] = placement.cause_sync_token or ""
    await _reclassify_oob_resolutions(journal, placement, "restored_at")

    placement.status = Status.ACTIVE.value
    placement.balance_minor_units = balance
    placement.resolution_reason = ""
    placement.review_reason = ""
    placement.resolving_qbo_payment_id = ""
    placement.resolved_at = None
    placement.cause_qbo_payment_id = ""
    placement.cause_sync_token = None
    placement.restore_balance_minor_units = None
    placement.version += 1
    placement.updated_at = journal.now
    journal.emit(placement, EventType.RESUME, f"restored by {actor}: {reason}")
    journal.audit(placement, "placement.restored", reason, details, actor=actor)
    await journal.close()
    return placement


async def _lock_reviewed(
    session: AsyncSession, placement_id: str, expected_version: int
) -> Placement:
    """Locks the placement a human reviewed, refusing it if it changed since."""
    locked = await _lock_placements(session, Placement.placement_id == placement_id)
    if not locked:
        raise NotFound(f"placement {placement_id} not found", reason="PLACEMENT_NOT_FOUND")
    placement = locked[0]
    if placement.version != expected_version:
        raise ConcurrentModification(
            f"placement {placement_id} is at version {placement.version}, not "
            f"{expected_version}: it changed since it was reviewed; read it again and retry",
            metadata={"current_version": str(placement.version)},
        )
    return placement


# ---------------------------------------------------------------------------------------
# ClearReviewFlag
# ---------------------------------------------------------------------------------------


async def clear_review_flag(
    session: AsyncSession, placement_id: str, expected_version: int, actor: str, reason: str
) -> Placement:
    """A human reviewed a flagged placement (a possible double payment refunded or found not
    to be one): the flag is cleared with an audit entry. Status, balance and outreach stay
    as they are, and the report keeps the entry of its day."""
    actor, reason = require_actor_and_reason(actor, reason)
    journal = await Journal.open(session, Source("review"))
    placement = await _lock_reviewed(session, placement_id, expected_version)
    if not placement.review_flag:
        raise FailedPrecondition(
            f"placement {placement_id} carries no review flag",
            reason="PLACEMENT_NOT_FLAGGED",
        )
    details: dict[str, Any] = {
        "previous_review_flag": placement.review_flag,
        "previous_review_flag_reason": placement.review_flag_reason,
        "expected_version": expected_version,
    }
    placement.review_flag = ReviewFlag.NONE.value
    placement.review_flag_reason = ""
    placement.flagged_at = None
    placement.version += 1
    placement.updated_at = journal.now
    journal.audit(placement, "placement.review_flag_cleared", reason, details, actor=actor)
    await journal.close()
    return placement
