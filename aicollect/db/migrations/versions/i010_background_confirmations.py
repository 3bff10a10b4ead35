"""Integration: confirmations of placement candidates carried out in the background.

A confirmation is recorded at once (who, why, the mode chosen for later invoices, how
many candidates it covers) and the integration workers place the candidates within the
company's request budget; at most one runs per tenant and company (a partial unique
index), and its counts show the progress.

Revision ID: i010
Revises: i009
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aicollect.db.columns import timestamp as _ts

revision: str = "i010"
down_revision: str | None = "i009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.create_table(
        "placement_confirmations",
        sa.Column("confirmation_id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("realm_id", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("future_mode", sa.Text(), nullable=False, server_default=""),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("placed", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("dropped", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=False, server_default=""),
        _ts("created_at", nullable=False, now=True),
        _ts("finished_at"),
        schema=S,
    )
    op.create_index(
        "uq_placement_confirmations_running",
        "placement_confirmations",
        ["tenant_id", "realm_id"],
        unique=True,
        postgresql_where=sa.text("state = 'confirming'"),
        schema=S,
    )
    op.create_index(
        "ix_placement_confirmations_tenant",
        "placement_confirmations",
        ["tenant_id", "realm_id", "created_at"],
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("placement_confirmations", schema=S)
