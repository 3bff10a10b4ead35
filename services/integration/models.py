"""Tables of schema ``integration``, owned by the integration service alone."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    Index,
    LargeBinary,
    MetaData,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aicollect.db.base import AuditEventColumns, SettingColumns
from services.integration.states import LIVE_STATES_SQL

SCHEMA = "integration"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Tenant(Base):
    """A creditor known to the integration; its per-provider flags are ``TenantProvider``."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    updated_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class TenantProvider(Base):
    """Whether a tenant may use one accounting platform (``qbo_enabled`` for QBO)."""

    __tablename__ = "tenant_providers"

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text, primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PlatformSetting(SettingColumns, Base):
    """Platform-wide settings this service owns (``<provider>_kill_switch`` per provider)."""

    __tablename__ = "settings"


class AuditEvent(AuditEventColumns, Base):
    """Audit trail of settings and connection changes."""

    __tablename__ = "audit_events"


class OAuthState(Base):
    """A single-use OAuth ``state``, stored only as its SHA-256, bound to a tenant."""

    __tablename__ = "oauth_states"

    state_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    # The platform the state was minted for; it completes only that platform's callback.
    provider: Mapped[str] = mapped_column(Text, default="qbo", server_default="qbo")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    consumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # SHA-256 of the browser binding (the gateway's HttpOnly cookie); NULL only for
    # states minted before bindings existed, which the callback refuses.
    binding_hash: Mapped[bytes | None] = mapped_column(LargeBinary)


class Connection(Base):
    """A tenant's accounting connection; one row per tenant, reused when it reconnects.

    ``provider`` says which platform it is (``qbo``); a company id (``realm_id``) is unique
    per provider among live connections, not globally.

    Tokens are sealed with ``aicollect.crypto.TokenCipher`` (AES-GCM, key id inside the
    value, the row's identity as associated data). ``token_generation`` increases with
    every token write, so a refresher can tell whether another process rotated first.
    """

    __tablename__ = "connections"
    __table_args__ = (
        Index(
            "uq_connections_live_provider_realm",
            "provider",
            "realm_id",
            unique=True,
            postgresql_where=text(f"state IN {LIVE_STATES_SQL}"),
        ),
        Index("ix_connections_grant", "grant_id"),
    )

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    realm_id: Mapped[str | None] = mapped_column(Text)
    # The accounting platform (``aicollect.provider.Provider`` value, e.g. ``qbo``).
    provider: Mapped[str] = mapped_column(Text, default="qbo", server_default="qbo")
    company_name: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(Text)
    state_detail: Mapped[str] = mapped_column(Text, default="")
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refresh_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refresh_hard_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disconnected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    disconnect_origin: Mapped[str | None] = mapped_column(Text)
    # Set when the tokens are a grant shared by several companies (Xero): they live in
    # ``grants`` and this row's token columns stay empty.
    grant_id: Mapped[str | None] = mapped_column(Text)
    # The platform's id of this company's link to our app (Xero's /connections id).
    platform_connection_id: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Grant(Base):
    """One grant (token set) that can cover several companies: Xero's token belongs to a
    Xero user and reaches every organisation that user connected. Stored once, sealed as
    a connection's tokens are, refreshed under one lock keyed by ``grant_id`` whichever
    organisation needs it; ``token_generation`` increases with every token write."""

    __tablename__ = "grants"
    __table_args__ = (Index("uq_grants_provider_subject", "provider", "subject", unique=True),)

    grant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)  # the platform's user (Xero: xero_userid)
    access_token: Mapped[str | None] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    access_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    refresh_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    token_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PendingRevocation(Base):
    """A refresh token whose revocation at Intuit failed; kept sealed only to retry it."""

    __tablename__ = "pending_revocations"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    realm_id: Mapped[str] = mapped_column(Text)
    # The accounting platform (``aicollect.provider.Provider`` value, e.g. ``qbo``).
    provider: Mapped[str] = mapped_column(Text, default="qbo", server_default="qbo")
    token: Mapped[str] = mapped_column(Text)
    # Set when ``token`` could not be re-sealed for the queue (its key was missing): it
    # stays sealed as the connection had it, under this associated data.
    token_identity: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class InboxEvent(Base):
    """One webhook event, stored before Intuit gets its 200; processed by the inbox workers.

    ``status``: ``pending`` (waiting or retrying), ``done``, ``dead`` (a dead letter after
    the bounded attempts; replayable), ``dropped`` (its realm was disconnected).

    A signed delivery that cannot be stored as parsed events is one ``dead`` row holding the
    body exactly as received in ``raw_body`` (no entity; ``last_error`` says why); replaying
    it parses the body again and stores its events.
    """

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        Index(
            "ix_webhook_inbox_due",
            "realm_id",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_inbox_status_realm", "status", "realm_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    dedupe_key: Mapped[str] = mapped_column(Text, unique=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    realm_id: Mapped[str] = mapped_column(Text)
    # The accounting platform (``aicollect.provider.Provider`` value, e.g. ``qbo``).
    provider: Mapped[str] = mapped_column(Text, default="qbo", server_default="qbo")
    entity: Mapped[str] = mapped_column(Text)
    entity_id: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    status: Mapped[str] = mapped_column(Text, default="pending")
    attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_error: Mapped[str] = mapped_column(Text, default="")
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    raw_body: Mapped[bytes | None] = mapped_column(LargeBinary)


class PlacementRulesRow(Base):
    """A tenant's placement rules (``sync.rules.PlacementRules`` as JSON), versioned."""

    __tablename__ = "placement_rules"

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB)
    version: Mapped[int] = mapped_column(BigInteger)
    updated_by: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SyncState(Base):
    """The inbound sync of one tenant's realm: backfill progress and checkpoint, CDC cursor.

    ``backfill_phase``: ``not_started``, ``pending`` (requested, not yet picked up),
    ``running`` (resumes from ``backfill_next_position`` after a crash), ``completed``,
    ``failed`` (resumes from its checkpoint at ``backfill_next_attempt_at``).
    ``cdc_high_water`` is QBO's own response ``time`` (never our clock); ``company_time``
    with ``company_time_seen_at`` is the last QBO time seen and when, from which the
    company's today is derived. ``overdue_through``: every invoice due on or before this
    date was considered for placement.
    """

    __tablename__ = "sync_states"

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    realm_id: Mapped[str] = mapped_column(Text, primary_key=True)
    # The accounting platform (``aicollect.provider.Provider`` value, e.g. ``qbo``).
    provider: Mapped[str] = mapped_column(Text, default="qbo", server_default="qbo")
    backfill_phase: Mapped[str] = mapped_column(Text, default="not_started")
    backfill_run_id: Mapped[str] = mapped_column(Text, default="")
    backfill_requested_by: Mapped[str] = mapped_column(Text, default="")
    backfill_started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    backfill_finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    backfill_invoices_seen: Mapped[int] = mapped_column(BigInteger, default=0)
    backfill_placements_created: Mapped[int] = mapped_column(BigInteger, default=0)
    backfill_last_error: Mapped[str] = mapped_column(Text, default="")
    backfill_company_date: Mapped[date | None] = mapped_column(Date)
    backfill_next_position: Mapped[int] = mapped_column(BigInteger, default=1)
    backfill_last_invoice_id: Mapped[str] = mapped_column(Text, default="")
    backfill_attempts: Mapped[int] = mapped_column(BigInteger, default=0)
    backfill_next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cdc_high_water: Mapped[str | None] = mapped_column(Text)
    cdc_last_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cdc_next_poll_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cdc_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    cdc_last_error: Mapped[str] = mapped_column(Text, default="")
    cdc_polls: Mapped[int] = mapped_column(BigInteger, default=0)
    cdc_objects_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    overdue_through: Mapped[date | None] = mapped_column(Date)
    company_time: Mapped[str | None] = mapped_column(Text)
    company_time_seen_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the poll last re-read every placed invoice (platforms that need it: Xero).
    placed_reread_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PlacedInvoice(Base):
    """An invoice the sync has placed (the matcher's placement id), by customer.

    Lets a customer edit reach exactly the placements of that customer, a re-sync after a
    long gap find placed invoices that were deleted in QBO, and a repeated backfill skip
    the invoices whose version the matcher already has.
    """

    __tablename__ = "placed_invoices"
    __table_args__ = (
        Index("ix_placed_invoices_customer", "tenant_id", "realm_id", "qbo_customer_id"),
    )

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    realm_id: Mapped[str] = mapped_column(Text, primary_key=True)
    qbo_invoice_id: Mapped[str] = mapped_column(Text, primary_key=True)
    qbo_customer_id: Mapped[str] = mapped_column(Text)
    placement_id: Mapped[str] = mapped_column(Text)
    # The invoice version (QBO SyncToken) the matcher was last given for this placement.
    sync_token: Mapped[str] = mapped_column(Text, default="")
    # The backfill run that placed it first ("" for a CDC poll or a webhook): the exact
    # count of placements a run created, even across a crash and resume.
    placed_by_run: Mapped[str] = mapped_column(Text, default="")


class RequestBudget(Base):
    """A company's request budget, shared by every integration replica
    (``services.integration.budget.SharedBudget``; times are the database's epoch seconds)."""

    __tablename__ = "request_budgets"

    provider: Mapped[str] = mapped_column(Text, primary_key=True)
    realm_id: Mapped[str] = mapped_column(Text, primary_key=True)
    # Start times of the requests granted in the platform's longest window.
    started: Mapped[list[float]] = mapped_column(ARRAY(Double), server_default=text("'{}'"))
    # {holder id: lease expiry} of the requests in flight.
    leases: Mapped[dict[str, float]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # {replica id: [priority, expiry]} of the replicas whose queues wait for a slot.
    waits: Mapped[dict[str, list[float]]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    paused_until: Mapped[float] = mapped_column(Double, server_default=text("0"))


class PlacementIntake(Base):
    """How a tenant's overdue invoices become placements (``sync.candidates``).

    ``mode``: ``preview`` (no confirmation yet: what the rules select is staged as
    candidates and waits; the default, so a new connection never starts outreach by
    itself), ``automatic`` (confirmed: newly overdue invoices are placed as the rules
    select them) or ``confirm_each_time`` (confirmed, and every newly selected invoice
    waits as a candidate for the next confirmation). No row means ``preview``.
    """

    __tablename__ = "placement_intake"

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text, primary_key=True)
    mode: Mapped[str] = mapped_column(Text)
    confirmations: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_by: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PlacementCandidate(Base):
    """An invoice the placement rules selected, waiting for the creditor's confirmation.

    ``status``: ``pending`` (waits), ``excluded`` (the creditor left it out),
    ``confirming`` (a confirmation is placing it), ``confirmed`` (placed:
    ``placement_id``), ``dropped`` (paid, voided, deleted or no longer selected before
    it was confirmed: ``drop_reason``). Amounts are minor units of ``currency``, as last
    read from the platform (``sync_token`` is that version). ``rules_version`` is the
    version of the placement rules that selected it (0: the defaults).
    """

    __tablename__ = "placement_candidates"
    __table_args__ = (
        Index("ix_placement_candidates_status", "tenant_id", "realm_id", "status", "invoice_id"),
    )

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    realm_id: Mapped[str] = mapped_column(Text, primary_key=True)
    invoice_id: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str] = mapped_column(Text)
    customer_id: Mapped[str] = mapped_column(Text)
    customer_name: Mapped[str] = mapped_column(Text, default="")
    doc_number: Mapped[str] = mapped_column(Text, default="")
    currency: Mapped[str] = mapped_column(Text)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    balance_minor: Mapped[int] = mapped_column(BigInteger)
    due_date: Mapped[date] = mapped_column(Date)
    sync_token: Mapped[str] = mapped_column(Text, default="")
    rules_version: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(Text)
    drop_reason: Mapped[str] = mapped_column(Text, default="")
    status_actor: Mapped[str] = mapped_column(Text, default="")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    placement_id: Mapped[str] = mapped_column(Text, default="")
    staged_by_run: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PlacementConfirmation(Base):
    """A creditor's confirmation of the pending candidates, carried out in the background.

    Recorded in the same transaction that marks the candidates ``confirming``; the
    integration workers place them (``state`` ``confirming``) and finish it as
    ``confirmed``, or ``failed`` (``error``: the candidates not placed wait again).
    ``future_mode`` is the intake mode chosen for later invoices (empty: keep), applied
    when it finishes. ``placed`` and ``dropped`` grow in the transactions that place or
    drop candidates, so they are exact after a crash.
    """

    __tablename__ = "placement_confirmations"
    __table_args__ = (
        Index(
            "uq_placement_confirmations_running",
            "tenant_id",
            "realm_id",
            unique=True,
            postgresql_where=text("state = 'confirming'"),
        ),
        Index("ix_placement_confirmations_tenant", "tenant_id", "realm_id", "created_at"),
    )

    confirmation_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    realm_id: Mapped[str] = mapped_column(Text)
    provider: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    future_mode: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(Text)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    placed: Mapped[int] = mapped_column(BigInteger, default=0)
    dropped: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
