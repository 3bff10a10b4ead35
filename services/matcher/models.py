"""Tables of schema ``matching``, owned by the matcher service alone.

Money is always a BIGINT number of the currency's minor unit plus an ISO 4217 code.
Statuses, outcomes and event types are stored as the lower-case names of
``services.matcher.domain`` enums.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aicollect.db.base import AuditEventColumns, SettingColumns

SCHEMA = "matching"

PLACEMENT_STATUSES = (
    "active",
    "paused_pending_review",
    "resolved_out_of_band",
    "resolved_paid_portal",
    "closed",
    "needs_review",
)
EVENT_TYPES = ("stop", "pause", "resume", "balance_changed", "report_ready")
REPORT_TRIGGERS = ("schedule", "regenerate")
FEE_TREATMENTS = ("full", "reduced", "waived")
REVIEW_FLAGS = ("", "possible_double_payment")
# The accounting platforms facts come from (``aicollect.matching.v1.Provider``, lower case).
PROVIDERS = ("qbo", "xero")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class MatchingSetting(SettingColumns, Base):
    """Matching settings read at decision time (tolerance, window)."""

    __tablename__ = "settings"


class AuditEvent(AuditEventColumns, Base):
    """Audit trail of placements and matching settings."""

    __tablename__ = "audit_events"


class Placement(Base):
    """One unpaid invoice of a tenant that we collect, with what the matcher knows of it in
    the provider's books (``provider``: ``qbo`` or ``xero``; ``company_id``: the QBO realm
    or Xero tenant).

    ``balance_minor_units`` is what outreach collects. The ``invoice_*`` columns are the
    matcher's view of the invoice in the provider's books: ``invoice_balance_minor_units`` is
    the open balance implied by every invoice version and payment seen so far, so a new
    invoice version can be split into what payments already explain and what changed for
    another reason.
    """

    __tablename__ = "placements"
    __table_args__ = (
        UniqueConstraint(
            "tenant_id", "provider", "company_id", "invoice_id", name="uq_placements_invoice"
        ),
        Index("ix_placements_tenant_created", "tenant_id", "created_at", "placement_id"),
        Index("ix_placements_customer", "tenant_id", "provider", "company_id", "customer_id"),
        CheckConstraint(_in("provider", PROVIDERS), name="ck_placements_provider"),
        CheckConstraint(_in("status", PLACEMENT_STATUSES), name="ck_placements_status"),
        CheckConstraint("balance_minor_units >= 0", name="ck_placements_balance"),
        CheckConstraint(_in("review_flag", REVIEW_FLAGS), name="ck_placements_review_flag"),
        # The placements an unread payment resolved (locked when it is first read).
        Index(
            "ix_placements_cause",
            "tenant_id",
            "provider",
            "company_id",
            "cause_payment_id",
        ),
        Index(
            "ix_placements_tenant_review_flag",
            "tenant_id",
            "review_flag",
            postgresql_where=text("review_flag <> ''"),
        ),
    )

    placement_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    company_id: Mapped[str] = mapped_column(Text)
    invoice_id: Mapped[str] = mapped_column(Text)
    doc_number: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    debtor: Mapped[dict[str, Any]] = mapped_column(JSONB)
    currency_code: Mapped[str] = mapped_column(Text)
    original_minor_units: Mapped[int] = mapped_column(BigInteger)
    balance_minor_units: Mapped[int] = mapped_column(BigInteger)
    invoice_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(Text)
    resolution_reason: Mapped[str] = mapped_column(Text)
    review_reason: Mapped[str] = mapped_column(Text)
    resolving_payment_id: Mapped[str] = mapped_column(Text)
    intake_channel: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The QBO payment behind the current resolution, pause or review flag, and its version;
    # RestorePlacement excludes it from future matching.
    cause_payment_id: Mapped[str] = mapped_column(Text)
    cause_version: Mapped[str | None] = mapped_column(Text)
    # The balance just before the placement left ACTIVE; what a restore puts back.
    restore_balance_minor_units: Mapped[int | None] = mapped_column(BigInteger)
    # What the debtor paid the creditor directly (QBO payments, mirrors excluded).
    oob_paid_minor_units: Mapped[int] = mapped_column(BigInteger)
    # Drops of the QBO balance presumed to be the QBO record of portal payments, awaiting
    # the payment itself.
    mirror_pending_minor_units: Mapped[int] = mapped_column(BigInteger)
    # Drops of the QBO balance counted as payments QBO links but the matcher has not read yet.
    unseen_paid_minor_units: Mapped[int] = mapped_column(BigInteger, server_default="0")
    invoice_version: Mapped[str] = mapped_column(Text)
    # The order of ``invoice_version`` (QBO: the SyncToken as an integer); 0 when unknown.
    invoice_version_sequence: Mapped[int] = mapped_column(BigInteger, server_default="0")
    invoice_state: Mapped[str] = mapped_column(Text)
    invoice_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    intake_invoice_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    invoice_total_minor_units: Mapped[int] = mapped_column(BigInteger)
    invoice_balance_minor_units: Mapped[int] = mapped_column(BigInteger)
    invoice_linked_payment_ids: Mapped[list[str]] = mapped_column(JSONB)
    # A flag for review that leaves status and outreach alone (the placement is already
    # stopped): "possible_double_payment" when a QBO payment brought more than was owed.
    review_flag: Mapped[str] = mapped_column(Text, server_default="")
    review_flag_reason: Mapped[str] = mapped_column(Text, server_default="")
    flagged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PaymentSeen(Base):
    """The last version of each payment the matcher applied (idempotency, edits, voids)."""

    __tablename__ = "payments"
    __table_args__ = (
        # The unapplied payments of a customer (an unapplied payment pauses the placements
        # whose balance it covers, checked whenever a balance falls).
        Index(
            "ix_payments_unapplied",
            "tenant_id",
            "provider",
            "company_id",
            "customer_id",
            postgresql_where=text("unapplied_minor_units > 0 AND state = 'active'"),
        ),
        CheckConstraint(_in("provider", PROVIDERS), name="ck_payments_provider"),
    )

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text, primary_key=True)
    company_id: Mapped[str] = mapped_column(Text, primary_key=True)
    payment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[str] = mapped_column(Text)
    # The order of ``version`` (QBO: the SyncToken as an integer); 0 when unknown.
    version_sequence: Mapped[int] = mapped_column(BigInteger, server_default="0")
    state: Mapped[str] = mapped_column(Text)
    currency_code: Mapped[str] = mapped_column(Text)
    total_minor_units: Mapped[int] = mapped_column(BigInteger)
    unapplied_minor_units: Mapped[int] = mapped_column(BigInteger)
    customer_id: Mapped[str] = mapped_column(Text)
    # {invoice id: amount applied in minor units} of the last version applied.
    invoice_amounts: Mapped[dict[str, int]] = mapped_column(JSONB)
    credit_memo_ids: Mapped[list[str]] = mapped_column(JSONB)
    # Placements this payment paused as a likely unapplied payment.
    paused_placement_ids: Mapped[list[str]] = mapped_column(JSONB)
    provider_created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    provider_updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PaymentApplication(Base):
    """How much of one QBO payment applies to one placement, and how it was counted."""

    __tablename__ = "payment_applications"

    placement_id: Mapped[str] = mapped_column(
        Text, ForeignKey("placements.placement_id"), primary_key=True
    )
    payment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    # The payment's line amount for the invoice, as of the version applied (0 once voided).
    amount_minor_units: Mapped[int] = mapped_column(BigInteger)
    # How much of it currently reduces the placement's balance (0 for a mirror or exclusion).
    counted_minor_units: Mapped[int] = mapped_column(BigInteger)
    # How much of it the placement's implied QBO balance already includes.
    reflected_minor_units: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(Text)  # "payment" or "credit_memo"
    mirror_portal_payment_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PaymentExclusion(Base):
    """A payment excluded from matching a placement by a restore, until QBO changes it."""

    __tablename__ = "payment_exclusions"

    placement_id: Mapped[str] = mapped_column(
        Text, ForeignKey("placements.placement_id"), primary_key=True
    )
    payment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    # The version excluded; NULL when the restore happened before the payment was read
    # (then any version last updated before ``excluded_at`` is excluded).
    version: Mapped[str | None] = mapped_column(Text)
    excluded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    excluded_by: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PortalPayment(Base):
    """A payment the debtor made through our portal."""

    __tablename__ = "portal_payments"
    __table_args__ = (
        Index("ix_portal_payments_tenant_pay_time", "tenant_id", "pay_time"),
        Index("ix_portal_payments_placement", "placement_id"),
        CheckConstraint("amount_minor_units > 0", name="ck_portal_payments_amount"),
    )

    portal_payment_id: Mapped[str] = mapped_column(Text, primary_key=True)
    placement_id: Mapped[str] = mapped_column(Text, ForeignKey("placements.placement_id"))
    tenant_id: Mapped[str] = mapped_column(Text)
    currency_code: Mapped[str] = mapped_column(Text)
    amount_minor_units: Mapped[int] = mapped_column(BigInteger)
    fee_minor_units: Mapped[int | None] = mapped_column(BigInteger)
    pay_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # How much it reduced the balance (less than the amount for an overpayment).
    applied_minor_units: Mapped[int] = mapped_column(BigInteger)
    mirrored_by_payment_id: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutOfBandResolution(Base):
    """Each time a placement was resolved out of band, for the reconciliation report."""

    __tablename__ = "oob_resolutions"
    __table_args__ = (Index("ix_oob_resolutions_tenant_resolved", "tenant_id", "resolved_at"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    placement_id: Mapped[str] = mapped_column(Text, ForeignKey("placements.placement_id"))
    tenant_id: Mapped[str] = mapped_column(Text)
    payment_id: Mapped[str] = mapped_column(Text)
    currency_code: Mapped[str] = mapped_column(Text)
    amount_minor_units: Mapped[int] = mapped_column(BigInteger)
    resolved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    restored_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Set when the resolution no longer stands as an out-of-band payment: the QBO payment
    # turned out to be the record of a portal payment or a credit memo, or it was voided,
    # deleted or reduced in QBO. Such resolutions leave the reconciliation report.
    reclassified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DoublePayment(Base):
    """A QBO payment that brought more than its placement owed: the placement was already
    paid or closed by something else (a possible double payment, a refund may be due), or
    the payment exceeded the balance. One row per (placement, payment), for the report."""

    __tablename__ = "double_payments"
    __table_args__ = (
        UniqueConstraint("placement_id", "payment_id", name="uq_double_payments_payment"),
        Index("ix_double_payments_tenant_detected", "tenant_id", "detected_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    placement_id: Mapped[str] = mapped_column(Text, ForeignKey("placements.placement_id"))
    tenant_id: Mapped[str] = mapped_column(Text)
    payment_id: Mapped[str] = mapped_column(Text)
    currency_code: Mapped[str] = mapped_column(Text)
    # The payment's amount for this placement's invoice.
    amount_minor_units: Mapped[int] = mapped_column(BigInteger)
    # What it brought beyond what the placement owed.
    excess_minor_units: Mapped[int] = mapped_column(BigInteger)
    # The payment's part applied to no transaction in QBO.
    unapplied_minor_units: Mapped[int] = mapped_column(BigInteger)
    # The placement's status when the payment arrived.
    previous_status: Mapped[str] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxRetention(Base):
    """The highest outbox id retention has purged (one row, once anything was purged)."""

    __tablename__ = "outbox_retention"
    __table_args__ = (CheckConstraint("id = 1", name="ck_outbox_retention_single_row"),)

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    purged_through: Mapped[int] = mapped_column(BigInteger)


class OutreachEventRow(Base):
    """The outreach-event outbox; ``id`` is the stream position (ids are assigned in commit
    order: writers take a transaction-level advisory lock just before inserting).

    Every event is about one placement, except ``report_ready``: a tenant's daily report
    (``report_day``, ``report_version``) is stored and ready to be sent."""

    __tablename__ = "outreach_events"
    __table_args__ = (
        Index("ix_outreach_events_tenant_id", "tenant_id", "id"),
        CheckConstraint(_in("type", EVENT_TYPES), name="ck_outreach_events_type"),
        CheckConstraint(
            "CASE WHEN type = 'report_ready'"
            " THEN placement_id IS NULL AND report_day IS NOT NULL AND report_version IS NOT NULL"
            " ELSE placement_id IS NOT NULL END",
            name="ck_outreach_events_subject",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    placement_id: Mapped[str | None] = mapped_column(Text, ForeignKey("placements.placement_id"))
    tenant_id: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    currency_code: Mapped[str] = mapped_column(Text)
    balance_minor_units: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    report_day: Mapped[date | None] = mapped_column(Date)
    report_version: Mapped[int | None] = mapped_column(Integer)


class TenantReportSettings(Base):
    """A tenant's daily-report settings: its time zone (NULL: the platform default) and its
    contingency-fee terms (all three NULL until set)."""

    __tablename__ = "tenant_report_settings"
    __table_args__ = (
        CheckConstraint(
            "(contingency_fee_bp IS NULL) = (oob_fee_treatment IS NULL)"
            " AND (contingency_fee_bp IS NULL) = (oob_fee_bp IS NULL)",
            name="ck_tenant_report_settings_terms_whole",
        ),
        CheckConstraint(
            "contingency_fee_bp BETWEEN 0 AND 10000 AND oob_fee_bp BETWEEN 0 AND 10000",
            name="ck_tenant_report_settings_bp",
        ),
        CheckConstraint(
            _in("oob_fee_treatment", FEE_TREATMENTS), name="ck_tenant_report_settings_treatment"
        ),
    )

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    time_zone: Mapped[str | None] = mapped_column(Text)
    contingency_fee_bp: Mapped[int | None] = mapped_column(Integer)
    oob_fee_treatment: Mapped[str | None] = mapped_column(Text)
    oob_fee_bp: Mapped[int | None] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(Text)


class DailyReportRow(Base):
    """One stored daily reconciliation report: ``body`` is the serialized
    ``aicollect.matching.v1.DailyReport`` exactly as generated. Rows are never updated (a
    trigger refuses it); a regenerated day gets the next ``version``."""

    __tablename__ = "daily_reports"
    __table_args__ = (
        UniqueConstraint("tenant_id", "day", "version", name="uq_daily_reports_version"),
        CheckConstraint("version >= 1", name="ck_daily_reports_version"),
        CheckConstraint(_in("trigger", REPORT_TRIGGERS), name="ck_daily_reports_trigger"),
        Index("ix_daily_reports_end_time", "end_time"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    day: Mapped[date] = mapped_column(Date)
    version: Mapped[int] = mapped_column(Integer)
    time_zone: Mapped[str] = mapped_column(Text)
    end_time: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    trigger: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    currency_codes: Mapped[list[str]] = mapped_column(ARRAY(Text))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(Text)
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


PAUSE_SCOPES = ("placement", "debtor", "tenant")


class OutreachPause(Base):
    """Outreach paused by a person: one placement, one debtor (a customer of a company) or
    the whole tenant. Open while ``resumed_at`` is NULL; a placement's outreach is paused
    while an open pause covers it (``services/matcher/pause_scope.py``)."""

    __tablename__ = "outreach_pauses"
    __table_args__ = (
        Index(
            "uq_outreach_pauses_open",
            "tenant_id",
            "scope",
            text("coalesce(placement_id, '')"),
            "company_id",
            "customer_id",
            unique=True,
            postgresql_where=text("resumed_at IS NULL"),
        ),
        Index("ix_outreach_pauses_tenant_paused", "tenant_id", "paused_at"),
        CheckConstraint(_in("scope", PAUSE_SCOPES), name="ck_outreach_pauses_scope"),
        CheckConstraint(
            "CASE scope"
            " WHEN 'placement' THEN placement_id IS NOT NULL AND company_id = ''"
            " AND customer_id = ''"
            " WHEN 'debtor' THEN placement_id IS NULL AND company_id <> ''"
            " AND customer_id <> ''"
            " ELSE placement_id IS NULL AND company_id = '' AND customer_id = '' END",
            name="ck_outreach_pauses_target",
        ),
        CheckConstraint(
            "(resumed_at IS NULL) = (resumed_by IS NULL)"
            " AND (resumed_at IS NULL) = (resume_reason IS NULL)",
            name="ck_outreach_pauses_resumed",
        ),
    )

    pause_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    placement_id: Mapped[str | None] = mapped_column(Text, ForeignKey("placements.placement_id"))
    company_id: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    paused_by: Mapped[str] = mapped_column(Text)
    pause_reason: Mapped[str] = mapped_column(Text)
    paused_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resumed_by: Mapped[str | None] = mapped_column(Text)
    resume_reason: Mapped[str | None] = mapped_column(Text)
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def table(model: type[Base]) -> Table:
    """A model's table, for Core statements: the decisions read and write rows without the
    ORM's unit of work (``services/matcher/decisions``, ``journal.py``)."""
    found = model.__table__
    assert isinstance(found, Table)
    return found


PLACEMENTS = table(Placement)
PAYMENTS = table(PaymentSeen)
APPLICATIONS = table(PaymentApplication)
EXCLUSIONS = table(PaymentExclusion)
PORTAL_PAYMENTS = table(PortalPayment)
OOB_RESOLUTIONS = table(OutOfBandResolution)
DOUBLE_PAYMENTS = table(DoublePayment)
AUDIT_EVENTS = table(AuditEvent)
OUTREACH_EVENTS = table(OutreachEventRow)
