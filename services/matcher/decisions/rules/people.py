"""The table's rows a person triggers, and the intake's refresh of descriptive fields.

* :func:`restore` — support's safe restore of a wrong resolution, closure or review flag:
  back to ACTIVE with the balance from before the resolution or closure, the causing
  change excluded until QBO changes it (a payment, or the invoice version itself), a
  RESUME event (the only one the matcher ever emits) and an audit entry.
* :func:`clear_review_flag` — a human reviewed a possible double payment: the flag goes,
  status, balance and outreach stay.
* :func:`refresh_descriptive` — a placement read again at intake: contact and invoice
  fields follow QBO; status and balance never do (nothing is resurrected).
"""

from __future__ import annotations

from typing import Any

from aicollect.errors import ConcurrentModification, FailedPrecondition
from services.matcher.decisions.outcomes import (
    ACTION_RESTORED,
    ACTION_REVIEW_FLAG_CLEARED,
    KIND_PAYMENT,
    RESTORABLE,
    TERMINAL,
)
from services.matcher.decisions.rules.common import (
    audit_entry,
    outreach_event,
    reclassify,
    version_order,
)
from services.matcher.decisions.values import (
    Context,
    Effect,
    Exclusion,
    Ledger,
    PlacementState,
    evolve,
)
from services.matcher.domain import EntityState, EventType, PlacementIn, ReviewFlag, Status


def check_reviewed(p: PlacementState, expected_version: int) -> None:
    """A human decided on the placement at ``expected_version``: refused if it changed."""
    if p.version != expected_version:
        raise ConcurrentModification(
            f"placement {p.placement_id} is at version {p.version}, not "
            f"{expected_version}: it changed since it was reviewed; read it again and retry",
            metadata={"current_version": str(p.version)},
        )


def restore(ledger: Ledger, expected_version: int, actor: str, reason: str, ctx: Context) -> Effect:
    p = ledger.placement
    status = Status(p.status)
    if status not in RESTORABLE:
        raise FailedPrecondition(
            f"placement {p.placement_id} is {status.value}; only resolved_out_of_band, "
            "closed, paused_pending_review and needs_review placements can be restored",
            reason="PLACEMENT_NOT_RESTORABLE",
            metadata={"status": status.value},
        )
    old_balance = p.balance_minor_units
    balance = old_balance
    if status in TERMINAL and p.restore_balance_minor_units is not None:
        balance = p.restore_balance_minor_units
    cause = p.cause_payment_id
    qbo_view = p.invoice_balance_minor_units
    details: dict[str, Any] = {
        "previous_status": status.value,
        "previous_balance_minor_units": old_balance,
        "expected_version": expected_version,
        "previous_resolution_reason": p.resolution_reason,
        "previous_review_reason": p.review_reason,
    }
    oob = p.oob_paid_minor_units
    unseen = p.unseen_paid_minor_units
    if cause:
        ledger = ledger.with_exclusion(
            Exclusion(
                placement_id=p.placement_id,
                payment_id=cause,
                version=p.cause_version,
                excluded_at=ctx.now,
                excluded_by=actor,
                reason=reason,
                lifted_at=None,
            )
        )
        app = ledger.applications.get(cause)
        if app is not None:
            if app.kind == KIND_PAYMENT and app.mirror_portal_payment_id is None:
                oob -= app.counted_minor_units
            ledger = ledger.with_application(evolve(app, counted_minor_units=0, updated_at=ctx.now))
        elif status is Status.RESOLVED_OUT_OF_BAND:
            oob = max(0, oob - (balance - old_balance))
            unseen = max(0, unseen - (balance - old_balance))
        details["excluded_payment_id"] = cause
        details["excluded_version"] = p.cause_version or ""
    elif status in TERMINAL and balance > old_balance:
        # Resolved or closed by an invoice version itself (a write-off, an adjustment, a
        # credit QBO shows on the invoice): that version is excluded by taking its drop
        # back out of the matcher's view of QBO's balance. The next version is compared
        # with the balance as it was before the excluded one: a reversed write-off changes
        # nothing, one that still stands closes the placement again.
        qbo_view += balance - old_balance
        details["excluded_invoice_version"] = p.invoice_version
        details["excluded_minor_units"] = balance - old_balance
    p = evolve(
        p,
        invoice_balance_minor_units=qbo_view,
        oob_paid_minor_units=oob,
        unseen_paid_minor_units=unseen,
        status=Status.ACTIVE.value,
        balance_minor_units=balance,
        resolution_reason="",
        review_reason="",
        resolving_payment_id="",
        resolved_at=None,
        cause_payment_id="",
        cause_version=None,
        restore_balance_minor_units=None,
        version=p.version + 1,
        updated_at=ctx.now,
    )
    return Effect(
        None,
        evolve(ledger, placement=p),
        (
            reclassify(p, "restored_at"),
            outreach_event(p, EventType.RESUME, f"restored by {actor}: {reason}"),
            audit_entry(p, ACTION_RESTORED, reason, details, actor=actor),
        ),
    )


def clear_review_flag(
    ledger: Ledger, expected_version: int, actor: str, reason: str, ctx: Context
) -> Effect:
    p = ledger.placement
    if not p.review_flag:
        raise FailedPrecondition(
            f"placement {p.placement_id} carries no review flag",
            reason="PLACEMENT_NOT_FLAGGED",
        )
    details: dict[str, Any] = {
        "previous_review_flag": p.review_flag,
        "previous_review_flag_reason": p.review_flag_reason,
        "expected_version": expected_version,
    }
    p = evolve(
        p,
        review_flag=ReviewFlag.NONE.value,
        review_flag_reason="",
        flagged_at=None,
        version=p.version + 1,
        updated_at=ctx.now,
    )
    entry = audit_entry(p, ACTION_REVIEW_FLAG_CLEARED, reason, details, actor=actor)
    return Effect(None, evolve(ledger, placement=p), (entry,))


def refresh_descriptive(p: PlacementState, item: PlacementIn) -> dict[str, Any]:
    """The descriptive fields an intake item changes on an existing placement: the contact
    on any placement still being worked, the invoice's fields from a version not older than
    the one stored. Never status or balance."""
    if Status(p.status) in TERMINAL:
        return {}
    wanted: dict[str, Any] = {"debtor": item.debtor}
    order = version_order(
        (p.invoice_version, p.invoice_version_sequence),
        p.invoice_state,
        (item.version, item.version_sequence),
        EntityState.ACTIVE,
    )
    if order >= 0:
        wanted.update(
            doc_number=item.doc_number,
            due_date=item.due_date,
            invoice_date=item.invoice_date,
            customer_id=item.customer_id,
        )
    return {name: value for name, value in wanted.items() if getattr(p, name) != value}
