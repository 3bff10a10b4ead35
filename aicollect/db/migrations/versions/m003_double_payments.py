"""Matching: possible double payments and overpayments.

A QBO payment that brings more than its placement owed (the placement was already paid or
closed by something else, or the payment exceeds the balance) is recorded once per
(placement, payment) for the reconciliation report, and flags the placement for review
without changing its status or outreach.

Revision ID: m003_double_payments
Revises: m002
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m003_double_payments"
down_revision: str | None = "m002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "matching"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column(
        "placements",
        sa.Column("review_flag", sa.Text(), server_default="", nullable=False),
        schema=SCHEMA,
    )
    op.add_column(
        "placements",
        sa.Column("review_flag_reason", sa.Text(), server_default="", nullable=False),
        schema=SCHEMA,
    )
    op.add_column("placements", sa.Column("flagged_at", TS, nullable=True), schema=SCHEMA)
    op.create_check_constraint(
        "ck_placements_review_flag",
        "placements",
        "review_flag IN ('', 'possible_double_payment')",
        schema=SCHEMA,
    )
    op.create_index(
        "ix_placements_tenant_review_flag",
        "placements",
        ["tenant_id", "review_flag"],
        schema=SCHEMA,
        postgresql_where=sa.text("review_flag <> ''"),
    )
    op.create_table(
        "double_payments",
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
        sa.Column("excess_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("unapplied_minor_units", sa.BigInteger(), nullable=False),
        sa.Column("previous_status", sa.Text(), nullable=False),
        sa.Column("detected_at", TS, nullable=False),
        sa.UniqueConstraint("placement_id", "qbo_payment_id", name="uq_double_payments_payment"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_double_payments_tenant_detected",
        "double_payments",
        ["tenant_id", "detected_at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_double_payments_tenant_detected", "double_payments", schema=SCHEMA)
    op.drop_table("double_payments", schema=SCHEMA)
    op.drop_index("ix_placements_tenant_review_flag", "placements", schema=SCHEMA)
    op.drop_constraint("ck_placements_review_flag", "placements", schema=SCHEMA)
    op.drop_column("placements", "flagged_at", schema=SCHEMA)
    op.drop_column("placements", "review_flag_reason", schema=SCHEMA)
    op.drop_column("placements", "review_flag", schema=SCHEMA)
