"""Matching: placements, QBO payments seen, applications, exclusions, portal payments,
out-of-band resolutions and the outreach-event outbox.

Revision ID: m001
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "m001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("matching",)
depends_on: str | Sequence[str] | None = None

SCHEMA = "matching"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("placement_id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("realm_id", sa.Text(), nullable=False),
        sa.Column("qbo_invoice_id", sa.Text(), nullable=False),
        sa.Column("doc_number", sa.Text(), nullable=False),
        sa.Column("qbo_customer_id", sa.Text(), nullable=False),
        sa.Column("debtor", postgresql.JSONB(), nullable=False),
        sa.Column("currency_code", sa.Text(), nullable=False),
        sa.Column("original_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("balance_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("resolution_reason", sa.Text(), nullable=False),
        sa.Column("review_reason", sa.Text(), nullable=False),
        sa.Column("resolving_qbo_payment_id", sa.Text(), nullable=False),
        sa.Column("intake_channel", sa.Text(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("cause_qbo_payment_id", sa.Text(), nullable=False),
        sa.Column("cause_sync_token", sa.Text(), nullable=True),
        sa.Column("restore_balance_minor_units", sa.BigInteger(), nullable=True),
        sa.Column("oob_paid_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("mirror_pending_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("qbo_invoice_sync_token", sa.Text(), nullable=False),
        sa.Column("qbo_invoice_state", sa.Text(), nullable=False),
        sa.Column("qbo_invoice_updated_at", TS, nullable=True),
        sa.Column("intake_invoice_updated_at", TS, nullable=True),
        sa.Column("qbo_total_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("qbo_balance_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("qbo_linked_payment_ids", postgresql.JSONB(), nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "realm_id", "qbo_invoice_id", name="uq_placements_invoice"
        ),
        sa.CheckConstraint(
            "status IN ('active', 'paused_pending_review', 'resolved_out_of_band', "
            "'resolved_paid_portal', 'closed', 'needs_review')",
            name="ck_placements_status",
        ),
        sa.CheckConstraint("balance_minor_units >= 0", name="ck_placements_balance"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_placements_tenant_created",
        "placements",
        ["tenant_id", "created_at", "placement_id"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_placements_customer",
        "placements",
        ["tenant_id", "realm_id", "qbo_customer_id"],
        schema=SCHEMA,
    )

    op.create_table(
        "qbo_payments",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("realm_id", sa.Text(), primary_key=True),
        sa.Column("qbo_payment_id", sa.Text(), primary_key=True),
        sa.Column("sync_token", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("currency_code", sa.Text(), nullable=False),
        sa.Column("total_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("unapplied_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("qbo_customer_id", sa.Text(), nullable=False),
        sa.Column("invoice_amounts", postgresql.JSONB(), nullable=False),
        sa.Column("credit_memo_ids", postgresql.JSONB(), nullable=False),
        sa.Column("paused_placement_ids", postgresql.JSONB(), nullable=False),
        sa.Column("qbo_created_at", TS, nullable=True),
        sa.Column("qbo_updated_at", TS, nullable=True),
        sa.Column("first_seen_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        schema=SCHEMA,
    )

    op.create_table(
        "payment_applications",
        sa.Column(
            "placement_id",
            sa.Text(),
            sa.ForeignKey(f"{SCHEMA}.placements.placement_id"),
            primary_key=True,
        ),
        sa.Column("qbo_payment_id", sa.Text(), primary_key=True),
        sa.Column("amount_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("counted_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("reflected_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("mirror_portal_payment_id", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        schema=SCHEMA,
    )

    op.create_table(
        "payment_exclusions",
        sa.Column(
            "placement_id",
            sa.Text(),
            sa.ForeignKey(f"{SCHEMA}.placements.placement_id"),
            primary_key=True,
        ),
        sa.Column("qbo_payment_id", sa.Text(), primary_key=True),
        sa.Column("sync_token", sa.Text(), nullable=True),
        sa.Column("excluded_at", TS, nullable=False),
        sa.Column("excluded_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("lifted_at", TS, nullable=True),
        schema=SCHEMA,
    )

    op.create_table(
        "portal_payments",
        sa.Column("portal_payment_id", sa.Text(), primary_key=True),
        sa.Column(
            "placement_id",
            sa.Text(),
            sa.ForeignKey(f"{SCHEMA}.placements.placement_id"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("currency_code", sa.Text(), nullable=False),
        sa.Column("amount_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("fee_minor_units", sa.BigInteger(), nullable=True),
        sa.Column("pay_time", TS, nullable=False),
        sa.Column("applied_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("mirrored_by_qbo_payment_id", sa.Text(), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.CheckConstraint("amount_minor_units > 0", name="ck_portal_payments_amount"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_portal_payments_tenant_pay_time",
        "portal_payments",
        ["tenant_id", "pay_time"],
        schema=SCHEMA,
    )
    op.create_index(
        "ix_portal_payments_placement", "portal_payments", ["placement_id"], schema=SCHEMA
    )

    op.create_table(
        "oob_resolutions",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column(
            "placement_id",
            sa.Text(),
            sa.ForeignKey(f"{SCHEMA}.placements.placement_id"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("qbo_payment_id", sa.Text(), nullable=False),
        sa.Column("currency_code", sa.Text(), nullable=False),
        sa.Column("amount_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", TS, nullable=False),
        sa.Column("restored_at", TS, nullable=True),
        sa.Column("reclassified_at", TS, nullable=True),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_oob_resolutions_tenant_resolved",
        "oob_resolutions",
        ["tenant_id", "resolved_at"],
        schema=SCHEMA,
    )

    op.create_table(
        "outreach_events",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.Text(), nullable=False, unique=True),
        sa.Column(
            "placement_id",
            sa.Text(),
            sa.ForeignKey(f"{SCHEMA}.placements.placement_id"),
            nullable=False,
        ),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("currency_code", sa.Text(), nullable=False),
        sa.Column("balance_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint(
            "type IN ('stop', 'pause', 'resume', 'balance_changed')",
            name="ck_outreach_events_type",
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outreach_events_tenant_id", "outreach_events", ["tenant_id", "id"], schema=SCHEMA
    )


def downgrade() -> None:
    for table in (
        "outreach_events",
        "oob_resolutions",
        "portal_payments",
        "payment_exclusions",
        "payment_applications",
        "qbo_payments",
        "placements",
    ):
        op.drop_table(table, schema=SCHEMA)
