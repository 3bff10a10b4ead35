"""Integration: a signed webhook that cannot be stored as parsed is kept as raw bytes.

Such a delivery (a lone surrogate, JSON nested too deep, anything jsonb refuses) is stored
as one dead letter holding the exact body it arrived with, so it can be acknowledged
instead of blocking Intuit's queue, and inspected and replayed by on-call.

Revision ID: i101
Revises: i100
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i101"
down_revision: str | None = "i100"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.add_column("webhook_inbox", sa.Column("raw_body", sa.LargeBinary(), nullable=True), schema=S)


def downgrade() -> None:
    op.drop_column("webhook_inbox", "raw_body", schema=S)
