"""Matching: outreach paused by a person, per placement, per debtor or tenant-wide. One row
per pause (a tenant's pause never touches its placements' rows); a placement's outreach is
paused while an open pause covers it, its debtor or its tenant.

Revision ID: m007_outreach_pauses
Revises: m006_daily_reports
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m007_outreach_pauses"
down_revision: str | None = "m006_daily_reports"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "matching"
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "outreach_pauses",
        sa.Column("pause_id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column(
            "placement_id",
            sa.Text(),
            sa.ForeignKey(f"{SCHEMA}.placements.placement_id"),
            nullable=True,
        ),
        sa.Column("company_id", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("paused_by", sa.Text(), nullable=False),
        sa.Column("pause_reason", sa.Text(), nullable=False),
        sa.Column("paused_at", TS, nullable=False),
        sa.Column("resumed_by", sa.Text(), nullable=True),
        sa.Column("resume_reason", sa.Text(), nullable=True),
        sa.Column("resumed_at", TS, nullable=True),
        sa.CheckConstraint(
            "scope IN ('placement', 'debtor', 'tenant')", name="ck_outreach_pauses_scope"
        ),
        sa.CheckConstraint(
            "CASE scope"
            " WHEN 'placement' THEN placement_id IS NOT NULL AND company_id = ''"
            " AND customer_id = ''"
            " WHEN 'debtor' THEN placement_id IS NULL AND company_id <> ''"
            " AND customer_id <> ''"
            " ELSE placement_id IS NULL AND company_id = '' AND customer_id = '' END",
            name="ck_outreach_pauses_target",
        ),
        sa.CheckConstraint(
            "(resumed_at IS NULL) = (resumed_by IS NULL)"
            " AND (resumed_at IS NULL) = (resume_reason IS NULL)",
            name="ck_outreach_pauses_resumed",
        ),
        schema=SCHEMA,
    )
    # At most one open pause per target; also the index every "is it paused?" reads.
    op.create_index(
        "uq_outreach_pauses_open",
        "outreach_pauses",
        ["tenant_id", "scope", sa.text("coalesce(placement_id, '')"), "company_id", "customer_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("resumed_at IS NULL"),
    )
    op.create_index(
        "ix_outreach_pauses_tenant_paused",
        "outreach_pauses",
        ["tenant_id", "paused_at"],
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index("ix_outreach_pauses_tenant_paused", "outreach_pauses", schema=SCHEMA)
    op.drop_index("uq_outreach_pauses_open", "outreach_pauses", schema=SCHEMA)
    op.drop_table("outreach_pauses", schema=SCHEMA)
