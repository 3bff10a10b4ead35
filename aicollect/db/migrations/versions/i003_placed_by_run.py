"""Integration: which backfill run placed each invoice first (exact progress after a crash).

Revision ID: i003
Revises: i002
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i003"
down_revision: str | None = "i002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.add_column(
        "placed_invoices",
        sa.Column("placed_by_run", sa.Text(), nullable=False, server_default=""),
        schema=S,
    )
    op.alter_column("placed_invoices", "placed_by_run", server_default=None, schema=S)


def downgrade() -> None:
    op.drop_column("placed_invoices", "placed_by_run", schema=S)
