"""Integration: inbound sync (placement rules, backfill progress and CDC cursor, placed invoices).

Revision ID: i002
Revises: i001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from aicollect.db.columns import timestamp as _ts

revision: str = "i002"
down_revision: str | None = "i001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.create_table(
        "placement_rules",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("rules", postgresql.JSONB(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        _ts("updated_at", nullable=False, now=True),
        schema=S,
    )
    op.create_table(
        "sync_states",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("realm_id", sa.Text(), primary_key=True),
        sa.Column("backfill_phase", sa.Text(), nullable=False),
        sa.Column("backfill_run_id", sa.Text(), nullable=False),
        sa.Column("backfill_requested_by", sa.Text(), nullable=False),
        _ts("backfill_started_at"),
        _ts("backfill_finished_at"),
        sa.Column("backfill_invoices_seen", sa.BigInteger(), nullable=False),
        sa.Column("backfill_placements_created", sa.BigInteger(), nullable=False),
        sa.Column("backfill_last_error", sa.Text(), nullable=False),
        sa.Column("backfill_company_date", sa.Date(), nullable=True),
        sa.Column("backfill_next_position", sa.BigInteger(), nullable=False),
        sa.Column("backfill_last_invoice_id", sa.Text(), nullable=False),
        sa.Column("backfill_attempts", sa.BigInteger(), nullable=False),
        _ts("backfill_next_attempt_at"),
        sa.Column("cdc_high_water", sa.Text(), nullable=True),
        _ts("cdc_last_poll_at"),
        _ts("cdc_next_poll_at"),
        sa.Column("cdc_requested", sa.Boolean(), nullable=False),
        sa.Column("cdc_last_error", sa.Text(), nullable=False),
        sa.Column("cdc_polls", sa.BigInteger(), nullable=False),
        sa.Column("cdc_objects_applied", sa.BigInteger(), nullable=False),
        sa.Column("overdue_through", sa.Date(), nullable=True),
        sa.Column("company_time", sa.Text(), nullable=True),
        _ts("company_time_seen_at"),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        schema=S,
    )
    op.create_table(
        "placed_invoices",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("realm_id", sa.Text(), primary_key=True),
        sa.Column("qbo_invoice_id", sa.Text(), primary_key=True),
        sa.Column("qbo_customer_id", sa.Text(), nullable=False),
        sa.Column("placement_id", sa.Text(), nullable=False),
        sa.Column("sync_token", sa.Text(), nullable=False),
        schema=S,
    )
    op.create_index(
        "ix_placed_invoices_customer",
        "placed_invoices",
        ["tenant_id", "realm_id", "qbo_customer_id"],
        schema=S,
    )


def downgrade() -> None:
    op.drop_index("ix_placed_invoices_customer", table_name="placed_invoices", schema=S)
    op.drop_table("placed_invoices", schema=S)
    op.drop_table("sync_states", schema=S)
    op.drop_table("placement_rules", schema=S)
