"""The frozen values the decision table reads and returns.

A decision reads a :class:`Ledger` per placement (the placement and every row the rules
look at for it), a :class:`Context` (settings and the decision's time) and the accounting
fact; it returns an :class:`Effect`: the ledger as it is after the decision, plus the
records to append (audit entries, outreach events, reconciliation rows) and the
:class:`~services.matcher.domain.Decision` answered to the caller.

Field names are the stored columns' names (``services/matcher/models.py``), so loading a
row into a value and writing a value back to its row are one loop each
(``snapshot.py``, ``effects.py``). Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from services.matcher.domain import Decision, EventType, Status

_T = TypeVar("_T")


def column_names(cls: type[Any]) -> tuple[str, ...]:
    """The stored columns a value type mirrors (every field)."""
    return tuple(f.name for f in fields(cls))


def evolve(value: _T, **changes: Any) -> _T:
    """A copy of a frozen value with some fields changed."""
    return replace(value, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class Context:
    """What every decision of one transaction shares: the matching settings read at
    decision time and the decision's time (never read from a clock by the table)."""

    tolerance: int
    window: timedelta
    now: datetime


@dataclass(frozen=True)
class PlacementState:
    """A placement (``matching.placements``) as the rules see it."""

    placement_id: str
    tenant_id: str
    provider: str
    company_id: str
    invoice_id: str
    doc_number: str
    customer_id: str
    debtor: Mapping[str, Any]
    currency_code: str
    original_minor_units: int
    balance_minor_units: int
    invoice_date: date | None
    due_date: date | None
    status: str
    resolution_reason: str
    review_reason: str
    resolving_payment_id: str
    version: int
    updated_at: datetime
    resolved_at: datetime | None
    cause_payment_id: str
    cause_version: str | None
    restore_balance_minor_units: int | None
    oob_paid_minor_units: int
    mirror_pending_minor_units: int
    unseen_paid_minor_units: int
    invoice_version: str
    invoice_version_sequence: int
    invoice_state: str
    invoice_updated_at: datetime | None
    invoice_total_minor_units: int
    invoice_balance_minor_units: int
    invoice_linked_payment_ids: tuple[str, ...]
    review_flag: str
    review_flag_reason: str
    flagged_at: datetime | None

    @property
    def state(self) -> Status:
        return Status(self.status)


@dataclass(frozen=True)
class Application:
    """How much of one QBO payment applies to one placement (``payment_applications``)."""

    placement_id: str
    payment_id: str
    amount_minor_units: int
    counted_minor_units: int
    reflected_minor_units: int
    kind: str
    mirror_portal_payment_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Exclusion:
    """A payment a restore excluded from a placement (``payment_exclusions``)."""

    placement_id: str
    payment_id: str
    version: str | None
    excluded_at: datetime
    excluded_by: str
    reason: str
    lifted_at: datetime | None


@dataclass(frozen=True)
class PortalState:
    """A payment made through our portal (``portal_payments``)."""

    portal_payment_id: str
    placement_id: str
    tenant_id: str
    currency_code: str
    amount_minor_units: int
    fee_minor_units: int | None
    pay_time: datetime
    applied_minor_units: int
    mirrored_by_payment_id: str | None
    recorded_at: datetime


@dataclass(frozen=True)
class SeenPayment:
    """The last version of a payment the matcher applied (``payments``)."""

    tenant_id: str
    provider: str
    company_id: str
    payment_id: str
    version: str
    version_sequence: int
    state: str
    currency_code: str
    total_minor_units: int
    unapplied_minor_units: int
    customer_id: str
    invoice_amounts: Mapping[str, int]
    credit_memo_ids: tuple[str, ...]
    paused_placement_ids: tuple[str, ...]
    provider_created_at: datetime | None
    provider_updated_at: datetime | None
    first_seen_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class PaymentTimes:
    """When QBO says a payment applied to a placement was made and last changed."""

    created: datetime | None
    updated: datetime | None


@dataclass(frozen=True)
class Ledger:
    """One placement and everything a decision about it reads.

    ``unapplied`` holds the QBO payments seen from the placement's customer that may carry
    unapplied money (in the database's order of payment ids); the rules filter them.
    """

    placement: PlacementState
    applications: Mapping[str, Application]
    exclusions: Mapping[str, Exclusion]
    portal_payments: tuple[PortalState, ...]
    double_payment_ids: frozenset[str]
    payment_times: Mapping[str, PaymentTimes]
    unapplied: tuple[SeenPayment, ...] = ()

    @property
    def id(self) -> str:
        return self.placement.placement_id

    def active_exclusion(self, payment_id: str) -> Exclusion | None:
        exclusion = self.exclusions.get(payment_id)
        if exclusion is None or exclusion.lifted_at is not None:
            return None
        return exclusion

    def with_placement(self, **changes: Any) -> Ledger:
        return replace(self, placement=replace(self.placement, **changes))

    def with_application(self, app: Application) -> Ledger:
        return replace(self, applications={**self.applications, app.payment_id: app})

    def with_exclusion(self, exclusion: Exclusion) -> Ledger:
        return replace(self, exclusions={**self.exclusions, exclusion.payment_id: exclusion})

    def with_portal(self, portal: PortalState) -> Ledger:
        others = tuple(
            p for p in self.portal_payments if p.portal_payment_id != portal.portal_payment_id
        )
        return replace(self, portal_payments=(*others, portal))


# ---------------------------------------------------------------------------------------
# Records an effect appends (in order)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditEntry:
    """An audit row about a placement; ``facts`` is the placement as it was when the entry
    was made (balance, status, version...), ``details`` what the rule adds."""

    placement_id: str
    tenant_id: str
    action: str
    reason: str
    facts: Mapping[str, Any]
    details: Mapping[str, Any]
    actor: str


@dataclass(frozen=True)
class OutreachEvent:
    """An outbox event: what outreach must do about a placement."""

    placement_id: str
    tenant_id: str
    type: EventType
    status: str
    currency_code: str
    balance_minor_units: int
    reason: str


@dataclass(frozen=True)
class ResolutionRecorded:
    """A new out-of-band resolution for the reconciliation report."""

    placement_id: str
    tenant_id: str
    payment_id: str
    currency_code: str
    amount_minor_units: int


@dataclass(frozen=True)
class ResolutionsChanged:
    """The placement's out-of-band resolutions that still stand are restored, reclassified
    (``column`` set to the decision's time) or corrected (``values``)."""

    placement_id: str
    column: str = ""
    values: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class DoublePaymentRecorded:
    """A payment that brought more than the placement owed (a possible double payment)."""

    placement_id: str
    tenant_id: str
    payment_id: str
    currency_code: str
    amount_minor_units: int
    excess_minor_units: int
    unapplied_minor_units: int
    previous_status: str


Record = (
    AuditEntry | OutreachEvent | ResolutionRecorded | ResolutionsChanged | DoublePaymentRecorded
)


@dataclass(frozen=True)
class Effect:
    """What one decision does: the placement's ledger after it, the records to append, in
    order, and the answer for the caller (None: the effect only records something, such
    as an exclusion lifted, and answers nothing)."""

    decision: Decision | None
    ledger: Ledger | None = None
    records: tuple[Record, ...] = ()
