"""The matcher's domain vocabulary: statuses, outcomes, inputs and decisions.

Plain values only (no protobuf, no SQL). Money is an integer number of the currency's minor
unit with its ISO 4217 code; there is no float anywhere in the matcher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from aicollect.currency import decimal_amount


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED_PENDING_REVIEW = "paused_pending_review"
    RESOLVED_OUT_OF_BAND = "resolved_out_of_band"
    RESOLVED_PAID_PORTAL = "resolved_paid_portal"
    CLOSED = "closed"
    NEEDS_REVIEW = "needs_review"


# Which statuses are terminal, under review or restorable: decisions/outcomes.py.


class Outcome(StrEnum):
    RESOLVED_OUT_OF_BAND = "resolved_out_of_band"
    PARTIAL_PAYMENT = "partial_payment"
    MIRRORS_PORTAL_PAYMENT = "mirrors_portal_payment"
    DUPLICATE_NO_CHANGE = "duplicate_no_change"
    EDIT_DIFFERENCE_APPLIED = "edit_difference_applied"
    FLAGGED_FOR_REVIEW = "flagged_for_review"
    PAUSED_UNAPPLIED_PAYMENT = "paused_unapplied_payment"
    CLOSED_BALANCE_ZERO = "closed_balance_zero"
    PAUSED_INVOICE_VOIDED = "paused_invoice_voided"
    PAUSED_CURRENCY_MISMATCH = "paused_currency_mismatch"
    EXCLUDED_AFTER_RESTORE = "excluded_after_restore"
    NO_PLACEMENT = "no_placement"
    BALANCE_UPDATED = "balance_updated"
    RESOLVED_PAID_PORTAL = "resolved_paid_portal"
    POSSIBLE_DOUBLE_PAYMENT = "possible_double_payment"


class ReviewFlag(StrEnum):
    """A flag for review that leaves status and outreach alone ("" is no flag)."""

    NONE = ""
    POSSIBLE_DOUBLE_PAYMENT = "possible_double_payment"


class EventType(StrEnum):
    STOP = "stop"
    PAUSE = "pause"
    RESUME = "resume"
    BALANCE_CHANGED = "balance_changed"
    REPORT_READY = "report_ready"  # not about a placement: a tenant's daily report is stored


class UpsertOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class EntityState(StrEnum):
    ACTIVE = "active"
    VOIDED = "voided"
    DELETED = "deleted"


class LinkType(StrEnum):
    INVOICE = "invoice"
    CREDIT_MEMO = "credit_memo"
    PAYMENT = "payment"
    JOURNAL_ENTRY = "journal_entry"
    OTHER = "other"


class IntakeChannel(StrEnum):
    ACCOUNTING_SYNC = "accounting_sync"
    MANUAL = "manual"
    CSV = "csv"


class FeeTreatment(StrEnum):
    FULL = "full"
    REDUCED = "reduced"
    WAIVED = "waived"


# The accounting platforms as audit reasons name them, by stored provider name.
PROVIDER_LABELS = {"qbo": "QBO", "xero": "Xero"}


def provider_label(provider: str) -> str:
    return PROVIDER_LABELS.get(provider, provider)


@dataclass(frozen=True)
class Money:
    currency: str
    minor_units: int


@dataclass(frozen=True)
class PlacementIn:
    invoice_id: str
    doc_number: str
    customer_id: str
    debtor: dict[str, Any]
    total: Money
    balance: Money
    invoice_date: date | None
    due_date: date
    version: str
    last_updated: datetime | None
    # The payments this invoice version links (QBO LinkedTxn): already inside ``balance``.
    linked_payment_ids: tuple[str, ...] = ()
    # The order of ``version`` (QBO: the SyncToken as an integer); 0 when unknown.
    version_sequence: int = 0


@dataclass(frozen=True)
class PaymentLineIn:
    linked_txn_id: str
    linked_type: LinkType
    amount: int


@dataclass(frozen=True)
class PaymentIn:
    payment_id: str
    version: str
    state: EntityState
    currency: str
    total: int
    unapplied: int
    customer_id: str
    lines: tuple[PaymentLineIn, ...]
    create_time: datetime | None
    last_updated: datetime | None
    txn_date: date | None = None
    version_sequence: int = 0


@dataclass(frozen=True)
class LinkedTxnIn:
    txn_id: str
    txn_type: LinkType


@dataclass(frozen=True)
class InvoiceIn:
    invoice_id: str
    version: str
    state: EntityState
    currency: str
    total: int
    balance: int
    doc_number: str
    due_date: date | None
    customer_id: str
    last_updated: datetime | None
    linked: tuple[LinkedTxnIn, ...]
    version_sequence: int = 0


@dataclass(frozen=True)
class PortalPaymentIn:
    placement_id: str
    portal_payment_id: str
    amount: Money
    pay_time: datetime
    fee: int | None


@dataclass(frozen=True)
class Source:
    """Which path brought an accounting change, recorded in every audit entry."""

    channel: str
    event_id: str = ""


@dataclass(frozen=True)
class Decision:
    placement_id: str
    invoice_id: str
    outcome: Outcome
    status: Status | None
    balance: Money | None
    applied: Money | None
    event: EventType | None
    detail: str


@dataclass(frozen=True)
class UpsertResult:
    invoice_id: str
    placement_id: str
    outcome: UpsertOutcome


@dataclass(frozen=True)
class FeeTerms:
    contingency_bp: int
    oob_treatment: FeeTreatment
    oob_reduced_bp: int


class ReportTrigger(StrEnum):
    SCHEDULE = "schedule"
    REGENERATE = "regenerate"


@dataclass(frozen=True)
class ReportSettings:
    """A tenant's daily-report settings as they apply: its own zone or the default, and
    its fee terms (None until set)."""

    tenant_id: str
    time_zone: str
    zone_is_default: bool
    terms: FeeTerms | None
    updated_at: datetime | None
    updated_by: str


@dataclass
class PortalEntry:
    portal_payment_id: str
    placement_id: str
    invoice_id: str
    doc_number: str
    pay_time: datetime
    amount: int
    fee: int

    @property
    def net(self) -> int:
        return self.amount - self.fee


@dataclass
class OutOfBandEntry:
    placement_id: str
    invoice_id: str
    doc_number: str
    payment_id: str
    resolve_time: datetime
    amount: int
    treatment: FeeTreatment
    fee: int
    restored: bool


@dataclass
class DoublePaymentEntry:
    placement_id: str
    invoice_id: str
    doc_number: str
    payment_id: str
    detect_time: datetime
    amount: int
    excess: int
    unapplied: int
    previous_status: Status


@dataclass
class CurrencySection:
    currency: str
    portal: list[PortalEntry] = field(default_factory=list)
    out_of_band: list[OutOfBandEntry] = field(default_factory=list)
    double_payments: list[DoublePaymentEntry] = field(default_factory=list)


@dataclass(frozen=True)
class Report:
    tenant_id: str
    day: date
    time_zone: str
    start: datetime
    end: datetime
    sections: list[CurrencySection]


def format_money(minor_units: int, currency: str) -> str:
    """``12345, "USD"`` -> ``"123.45 USD"``, with integer arithmetic only."""
    return f"{decimal_amount(minor_units, currency)} {currency}"
