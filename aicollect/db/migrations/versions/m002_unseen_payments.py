"""Matching: placements remember balance drops counted for QBO payments not read yet.

Revision ID: m002
Revises: m001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m002"
down_revision: str | None = "m001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "placements",
        sa.Column("unseen_paid_minor_units", sa.BigInteger(), server_default="0", nullable=False),
        schema="matching",
    )


def downgrade() -> None:
    op.drop_column("placements", "unseen_paid_minor_units", schema="matching")
