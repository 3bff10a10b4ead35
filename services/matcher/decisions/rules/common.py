"""What every row of the table shares: a rule's :class:`Change`, :func:`settle` (which
turns it into the placement's new state, its audit entry, its outreach event and the
caller's decision), and the double-payment flag several rules raise.

Pure: values in, values out; the time is the context's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.matcher.decisions.outcomes import (
    ACTION_FLAGGED_DOUBLE_PAYMENT,
    KIND_PAYMENT,
    PAID_THROUGH_PORTAL,
    REVIEW,
    TERMINAL,
    VERDICTS,
    Verdict,
    event_for,
)
from services.matcher.decisions.values import (
    AuditEntry,
    Context,
    DoublePaymentRecorded,
    Effect,
    Exclusion,
    Ledger,
    OutreachEvent,
    PlacementState,
    Record,
    ResolutionRecorded,
    ResolutionsChanged,
    evolve,
)
from services.matcher.domain import (
    Decision,
    EntityState,
    EventType,
    Money,
    Outcome,
    ReviewFlag,
    Status,
    format_money,
    provider_label,
)

SYSTEM_ACTOR = "system"

# What each provider calls the version of a record, where the texts name it.
VERSION_NAMES = {"qbo": "sync token"}


def payment_label(provider: str, payment_id: str) -> str:
    """A payment in the provider's books, as the texts a creditor reads name it
    ("QBO payment 123", "Xero payment 1f3e...")."""
    return f"{provider_label(provider)} payment {payment_id}"


def version_name(provider: str) -> str:
    """What the provider's version of a record is called: QBO's sync token, else
    "version" (Xero's is its last update time)."""
    return VERSION_NAMES.get(provider, "version")


def version_order(
    stored: tuple[str, int], stored_state: str, incoming: tuple[str, int], state: EntityState
) -> int:
    """-1: the incoming version is older than the stored one, 0: the same, 1: newer.

    A version is the provider's opaque text and its order (``version_sequence``: QBO's
    SyncToken as an integer, Xero's UpdatedDateUTC in milliseconds; 0 when unknown). The
    same text is the same version; otherwise the orders decide when both are known, and
    text made of digits (QBO sync tokens) when not. A deletion is final.
    """
    (stored_text, stored_sequence), (text, sequence) = stored, incoming
    if stored_state == EntityState.DELETED:
        return 0 if state is EntityState.DELETED else -1
    if state is EntityState.DELETED:
        return 1
    if text == stored_text:
        return 0
    if sequence > 0 and stored_sequence > 0:
        return (sequence > stored_sequence) - (sequence < stored_sequence)
    if text.isdigit() and stored_text.isdigit():
        return 1 if int(text) > int(stored_text) else -1
    return 1


def money(p: PlacementState, minor_units: int) -> str:
    return format_money(minor_units, p.currency_code)


def exclusion_holds(exclusion: Exclusion, token: str, updated: datetime | None) -> bool:
    """A restore's exclusion holds until QBO changes the payment (a new sync token)."""
    if exclusion.version is not None:
        return exclusion.version == token
    # Excluded before the payment was read: versions older than the restore are excluded.
    return updated is None or updated <= exclusion.excluded_at


def report(
    p: PlacementState | None,
    invoice_id: str,
    outcome: Outcome,
    detail: str,
    *,
    applied: int = 0,
    event: EventType | None = None,
) -> Decision:
    """The decision answered to the caller, with the placement as it now is."""
    if p is None:
        return Decision("", invoice_id, outcome, None, None, None, None, detail)
    currency = p.currency_code
    return Decision(
        placement_id=p.placement_id,
        invoice_id=invoice_id or p.invoice_id,
        outcome=outcome,
        status=Status(p.status),
        balance=Money(currency, p.balance_minor_units),
        applied=Money(currency, applied) if applied else None,
        event=event,
        detail=detail,
    )


def unchanged(
    ledger: Ledger | None,
    invoice_id: str,
    outcome: Outcome,
    detail: str,
    records: Sequence[Record] = (),
) -> Effect:
    """A decision that changes no status nor balance (the ledger may still record what was
    read, e.g. a payment's amount)."""
    p = ledger.placement if ledger is not None else None
    return Effect(report(p, invoice_id, outcome, detail), ledger, tuple(records))


def audit_entry(
    p: PlacementState,
    action: str,
    reason: str,
    details: Mapping[str, Any],
    *,
    actor: str = SYSTEM_ACTOR,
) -> AuditEntry:
    """An audit entry with the placement's facts as they are now."""
    return AuditEntry(
        placement_id=p.placement_id,
        tenant_id=p.tenant_id,
        action=action,
        reason=reason,
        facts={
            "balance_minor_units": p.balance_minor_units,
            "currency_code": p.currency_code,
            "status": p.status,
            "version": p.version,
            "provider": p.provider,
            "invoice_id": p.invoice_id,
        },
        details=dict(details),
        actor=actor,
    )


def outreach_event(p: PlacementState, event: EventType, reason: str) -> OutreachEvent:
    return OutreachEvent(
        placement_id=p.placement_id,
        tenant_id=p.tenant_id,
        type=event,
        status=p.status,
        currency_code=p.currency_code,
        balance_minor_units=p.balance_minor_units,
        reason=reason,
    )


@dataclass(frozen=True)
class Change:
    """One rule's verdict about one placement; :func:`settle` applies it."""

    verdict: Verdict
    detail: str
    balance: int | None = None
    resolution_reason: str | None = None
    review_reason: str | None = None
    resolving_payment_id: str | None = None
    cause: tuple[str, str | None] | None = None
    details: Mapping[str, Any] | None = None
    audit: bool = True


def _visible(p: PlacementState) -> tuple[Any, ...]:
    return (
        p.status,
        p.balance_minor_units,
        p.resolution_reason,
        p.review_reason,
        p.resolving_payment_id,
        p.doc_number,
        p.due_date,
        p.invoice_date,
        p.debtor,
        p.customer_id,
    )


def settle(
    ledger: Ledger,
    change: Change,
    ctx: Context,
    invoice_id: str = "",
    records: Sequence[Record] = (),
) -> Effect:
    """Applies a change to a placement, bumps its version when something visible changed,
    and adds the audit entry and the outreach event the change implies to ``records``."""
    row = VERDICTS[change.verdict]
    p = ledger.placement
    old_status = Status(p.status)
    old_balance = p.balance_minor_units
    new_status = row.status or old_status
    new_balance = old_balance if change.balance is None else max(0, change.balance)
    visible_before = _visible(p)

    updates: dict[str, Any] = {}
    if new_status is not old_status:
        if old_status not in TERMINAL or new_status not in TERMINAL:
            # What a restore gives back: the balance from before outreach stopped, kept when
            # a resolution is corrected (out of band to closed by a credit memo).
            updates["restore_balance_minor_units"] = old_balance
        if new_status in TERMINAL:
            updates.update(resolved_at=ctx.now, review_reason="")
        else:
            updates.update(resolved_at=None, resolution_reason="", resolving_payment_id="")
        if new_status is Status.ACTIVE:
            updates["review_reason"] = ""
    updates.update(status=new_status.value, balance_minor_units=new_balance)
    if change.resolution_reason is not None:
        updates["resolution_reason"] = change.resolution_reason
    if change.review_reason is not None:
        updates["review_reason"] = change.review_reason
    if change.resolving_payment_id is not None:
        updates["resolving_payment_id"] = change.resolving_payment_id
    if change.cause is not None:
        updates["cause_payment_id"], updates["cause_version"] = change.cause
    p = evolve(p, **updates)

    changed = _visible(p) != visible_before
    if changed:
        p = evolve(p, version=p.version + 1, updated_at=ctx.now)
    event = event_for(old_status, new_status, new_balance != old_balance) if changed else None
    reason = (
        p.resolution_reason
        if new_status in TERMINAL
        else p.review_reason
        if new_status in REVIEW
        else change.detail
    )
    out = list(records)
    if event is not None:
        out.append(outreach_event(p, event, reason))
    if change.audit and (changed or change.details):
        out.append(
            audit_entry(
                p,
                row.action,
                change.detail,
                {
                    "outcome": row.outcome.value,
                    "previous_status": old_status.value,
                    "previous_balance_minor_units": old_balance,
                    "outreach_event": event.value if event else "",
                    **(change.details or {}),
                },
            )
        )
    decision = report(
        p,
        invoice_id,
        row.outcome,
        change.detail,
        applied=old_balance - new_balance,
        event=event,
    )
    return Effect(decision, evolve(ledger, placement=p), tuple(out))


def reclassify(p: PlacementState, column: str = "reclassified_at") -> ResolutionsChanged:
    """The placement's out-of-band resolutions that still stand no longer do."""
    return ResolutionsChanged(p.placement_id, column=column)


def resolution_recorded(p: PlacementState, payment_id: str) -> ResolutionRecorded:
    return ResolutionRecorded(
        placement_id=p.placement_id,
        tenant_id=p.tenant_id,
        payment_id=payment_id,
        currency_code=p.currency_code,
        amount_minor_units=p.oob_paid_minor_units,
    )


def money_payment(ledger: Ledger) -> str:
    """The QBO payment that most recently counted money paid out of band on the placement."""
    counted = [
        a
        for a in ledger.applications.values()
        if a.kind == KIND_PAYMENT
        and a.mirror_portal_payment_id is None
        and a.counted_minor_units > 0
    ]
    if not counted:
        return ledger.placement.resolving_payment_id
    latest = max(counted, key=lambda a: (a.updated_at, a.payment_id))
    return latest.payment_id


def stopped_by(p: PlacementState, status: Status) -> str:
    """What stopped or paused a placement, in words, for a double-payment flag."""
    if status is Status.RESOLVED_OUT_OF_BAND and p.resolving_payment_id:
        return f"paid out-of-band ({payment_label(p.provider, p.resolving_payment_id)})"
    why = p.resolution_reason if status in TERMINAL else p.review_reason
    return f"{status.value} ({why})" if why else status.value


@dataclass(frozen=True)
class Flag:
    """A double-payment flag raised by :func:`flag_double_payment`."""

    ledger: Ledger
    records: tuple[Record, ...]
    reason: str


def flag_double_payment(
    ledger: Ledger,
    ctx: Context,
    *,
    payment_id: str,
    amount: int,
    excess: int,
    unapplied: int,
    previous: Status,
    owed: int,
) -> Flag | None:
    """A QBO payment brought ``excess`` beyond what the placement owed: recorded for the
    report, the placement flagged as a possible double payment and audited, once per
    (placement, payment). Status and outreach are left alone: a flag never resumes
    anything. None when this payment was already recorded."""
    if payment_id in ledger.double_payment_ids:
        return None
    p = ledger.placement
    recorded = DoublePaymentRecorded(
        placement_id=p.placement_id,
        tenant_id=p.tenant_id,
        payment_id=payment_id,
        currency_code=p.currency_code,
        amount_minor_units=amount,
        excess_minor_units=excess,
        unapplied_minor_units=unapplied,
        previous_status=previous.value,
    )
    what = (
        f"{payment_label(p.provider, payment_id)} of {money(p, amount)} to invoice {p.invoice_id}"
    )
    remainder = f", and {money(p, unapplied)} of it is unapplied" if unapplied else ""
    if previous is Status.ACTIVE:
        reason = (
            f"{what} is {money(p, excess)} more than the {money(p, owed)} "
            f"still owed{remainder}: possible double payment, a refund may be due"
        )
    else:
        after = "stays stopped" if previous in TERMINAL else "stays paused"
        reason = (
            f"{what} arrived after the placement was already {stopped_by(p, previous)}"
            f"; {money(p, excess)} beyond what was owed{remainder}: possible double "
            f"payment, a refund may be due. Outreach {after}; nothing resumes"
        )
    p = evolve(
        p,
        review_flag=ReviewFlag.POSSIBLE_DOUBLE_PAYMENT.value,
        review_flag_reason=reason,
        flagged_at=ctx.now,
        version=p.version + 1,
        updated_at=ctx.now,
    )
    entry = audit_entry(
        p,
        ACTION_FLAGGED_DOUBLE_PAYMENT,
        reason,
        {
            "outcome": Outcome.POSSIBLE_DOUBLE_PAYMENT.value,
            "payment_id": payment_id,
            "amount_minor_units": amount,
            "excess_minor_units": excess,
            "unapplied_minor_units": unapplied,
            "owed_minor_units": owed,
            "previous_status": previous.value,
            "review_flag": p.review_flag,
        },
    )
    after_flag = evolve(
        ledger, placement=p, double_payment_ids=ledger.double_payment_ids | {payment_id}
    )
    return Flag(after_flag, (recorded, entry), reason)


def double_payment_change(
    reason: str, balance: int, details: Mapping[str, Any], balance_moved: bool
) -> Change:
    """The decision for a placement already stopped or paused when a payment brought more
    than it owed: only the balance may follow (what little was still owed); the flag and
    its audit entry are :func:`flag_double_payment`'s."""
    return Change(
        Verdict.DOUBLE_PAYMENT_BALANCE,
        reason,
        balance=balance,
        details=details,
        audit=balance_moved,
    )


def mirror_change(
    p: PlacementState,
    new_balance: int,
    detail: str,
    details: Mapping[str, Any],
    ctx: Context,
    *,
    pays: Verdict,
    balance_only: Verdict,
) -> tuple[Change, tuple[Record, ...]]:
    """A QBO payment and a portal payment are the same money: if that pays the placement, it
    was paid through the portal (never out of band); otherwise only the balance follows."""
    status = Status(p.status)
    if new_balance <= ctx.tolerance and status not in {
        Status.RESOLVED_PAID_PORTAL,
        Status.CLOSED,
    }:
        records: tuple[Record, ...] = ()
        if status is Status.RESOLVED_OUT_OF_BAND:
            records = (reclassify(p),)
        change = Change(
            pays,
            detail,
            balance=new_balance,
            resolution_reason=PAID_THROUGH_PORTAL,
            resolving_payment_id="",
            cause=("", None),
            details=details,
        )
        return change, records
    return Change(balance_only, detail, balance=new_balance, details=details), ()
