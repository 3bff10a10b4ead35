"""One mapping from what a rule decided to what it means: the outcome answered to the
caller, the audit action, the status the placement takes, and the outreach event.

Every rule of the table names a :class:`Verdict`; :data:`VERDICTS` says, for each, the
outcome, the audit action and the new status (``None``: the status stays). The outreach
event follows from the status change alone (:func:`event_for`): STOP on entering a
terminal status, PAUSE on entering a review status, BALANCE_CHANGED when an active
placement's balance moves. Only a human's restore emits RESUME.

This is also the one definition of the terminal and review statuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from services.matcher.domain import EventType, Outcome, Status

# Outreach has stopped for good.
TERMINAL = frozenset({Status.RESOLVED_OUT_OF_BAND, Status.RESOLVED_PAID_PORTAL, Status.CLOSED})
# Outreach is paused until a human decides.
REVIEW = frozenset({Status.PAUSED_PENDING_REVIEW, Status.NEEDS_REVIEW})
# What support may restore to ACTIVE: a wrong accounting fact can resolve out of band,
# close (credit memo, write-off) or pause/flag a placement. Paid through the portal is
# our own record of money received, never a wrong accounting fact.
RESTORABLE = frozenset({Status.RESOLVED_OUT_OF_BAND, Status.CLOSED, *REVIEW})

# Resolution reasons shown to the creditor.
PAID_OUT_OF_BAND = "paid out-of-band"
PAID_THROUGH_PORTAL = "paid through the portal"

# How a QBO payment's amount on an invoice was funded (``payment_applications.kind``).
KIND_PAYMENT = "payment"
KIND_CREDIT_MEMO = "credit_memo"


class Verdict(StrEnum):
    """What a rule decided about a placement."""

    PAID_OUT_OF_BAND = "paid_out_of_band"
    PAID_THROUGH_PORTAL = "paid_through_portal"
    PARTIAL_PAYMENT = "partial_payment"
    PORTAL_PARTIAL_PAYMENT = "portal_partial_payment"
    EDIT_APPLIED = "edit_applied"
    BALANCE_UPDATED = "balance_updated"
    CLOSED_BALANCE_ZERO = "closed_balance_zero"
    FLAGGED_FOR_REVIEW = "flagged_for_review"
    PAUSED_UNAPPLIED_PAYMENT = "paused_unapplied_payment"
    PAUSED_CURRENCY_MISMATCH = "paused_currency_mismatch"
    PAUSED_INVOICE_VOIDED = "paused_invoice_voided"
    PAUSED_INVOICE_DELETED = "paused_invoice_deleted"
    MIRROR_PAYS = "mirror_pays"
    MIRROR_BALANCE = "mirror_balance"
    PORTAL_MIRRORED_PAYS = "portal_mirrored_pays"
    PORTAL_MIRRORED_BALANCE = "portal_mirrored_balance"
    DOUBLE_PAYMENT_BALANCE = "double_payment_balance"
    PAYMENT_NO_CHANGE = "payment_no_change"
    INVOICE_NO_CHANGE = "invoice_no_change"
    RESOLUTION_CORRECTED = "resolution_corrected"


@dataclass(frozen=True)
class Row:
    """A verdict's meaning. ``status`` None keeps the placement's status."""

    outcome: Outcome
    action: str
    status: Status | None


_PAUSED = Status.PAUSED_PENDING_REVIEW
_MIRRORS = Outcome.MIRRORS_PORTAL_PAYMENT

VERDICTS: dict[Verdict, Row] = {
    Verdict.PAID_OUT_OF_BAND: Row(
        Outcome.RESOLVED_OUT_OF_BAND, "placement.resolved_out_of_band", Status.RESOLVED_OUT_OF_BAND
    ),
    Verdict.PAID_THROUGH_PORTAL: Row(
        Outcome.RESOLVED_PAID_PORTAL, "placement.resolved_paid_portal", Status.RESOLVED_PAID_PORTAL
    ),
    Verdict.PARTIAL_PAYMENT: Row(Outcome.PARTIAL_PAYMENT, "placement.partial_payment", None),
    Verdict.PORTAL_PARTIAL_PAYMENT: Row(
        Outcome.PARTIAL_PAYMENT, "placement.portal_partial_payment", None
    ),
    Verdict.EDIT_APPLIED: Row(
        Outcome.EDIT_DIFFERENCE_APPLIED, "placement.payment_edit_applied", None
    ),
    Verdict.BALANCE_UPDATED: Row(Outcome.BALANCE_UPDATED, "placement.balance_updated", None),
    Verdict.CLOSED_BALANCE_ZERO: Row(
        Outcome.CLOSED_BALANCE_ZERO, "placement.closed_balance_zero", Status.CLOSED
    ),
    Verdict.FLAGGED_FOR_REVIEW: Row(
        Outcome.FLAGGED_FOR_REVIEW, "placement.flagged_for_review", Status.NEEDS_REVIEW
    ),
    Verdict.PAUSED_UNAPPLIED_PAYMENT: Row(
        Outcome.PAUSED_UNAPPLIED_PAYMENT, "placement.paused_unapplied_payment", _PAUSED
    ),
    Verdict.PAUSED_CURRENCY_MISMATCH: Row(
        Outcome.PAUSED_CURRENCY_MISMATCH, "placement.paused_currency_mismatch", _PAUSED
    ),
    Verdict.PAUSED_INVOICE_VOIDED: Row(
        Outcome.PAUSED_INVOICE_VOIDED, "placement.paused_invoice_voided", _PAUSED
    ),
    Verdict.PAUSED_INVOICE_DELETED: Row(
        Outcome.PAUSED_INVOICE_VOIDED, "placement.paused_invoice_deleted", _PAUSED
    ),
    Verdict.MIRROR_PAYS: Row(
        _MIRRORS, "placement.payment_mirrors_portal", Status.RESOLVED_PAID_PORTAL
    ),
    Verdict.MIRROR_BALANCE: Row(_MIRRORS, "placement.payment_mirrors_portal", None),
    Verdict.PORTAL_MIRRORED_PAYS: Row(
        _MIRRORS, "placement.portal_payment_mirrored", Status.RESOLVED_PAID_PORTAL
    ),
    Verdict.PORTAL_MIRRORED_BALANCE: Row(_MIRRORS, "placement.portal_payment_mirrored", None),
    Verdict.DOUBLE_PAYMENT_BALANCE: Row(
        Outcome.POSSIBLE_DOUBLE_PAYMENT, "placement.balance_updated", None
    ),
    Verdict.PAYMENT_NO_CHANGE: Row(Outcome.DUPLICATE_NO_CHANGE, "placement.payment_recorded", None),
    Verdict.INVOICE_NO_CHANGE: Row(Outcome.DUPLICATE_NO_CHANGE, "placement.invoice_recorded", None),
    Verdict.RESOLUTION_CORRECTED: Row(
        Outcome.DUPLICATE_NO_CHANGE, "placement.resolution_corrected", None
    ),
}

# Audit actions of records that are not a verdict's own entry.
ACTION_FLAGGED_DOUBLE_PAYMENT = "placement.flagged_possible_double_payment"
ACTION_DOUBLE_PAYMENT_REMOVED = "placement.double_payment_removed"
ACTION_EXCLUSION_LIFTED = "placement.exclusion_lifted"
ACTION_RESTORED = "placement.restored"
ACTION_REVIEW_FLAG_CLEARED = "placement.review_flag_cleared"
ACTION_UPDATED = "placement.updated"
ACTION_CREATED = "placement.created"


def event_for(old: Status, new: Status, balance_changed: bool) -> EventType | None:
    """The outreach event a status change implies. Never RESUME: only a human resumes."""
    if new in TERMINAL:
        return EventType.STOP if old not in TERMINAL else None
    if new in REVIEW:
        return EventType.PAUSE if old not in REVIEW else None
    if new is Status.ACTIVE and old is Status.ACTIVE and balance_changed:
        return EventType.BALANCE_CHANGED
    return None
