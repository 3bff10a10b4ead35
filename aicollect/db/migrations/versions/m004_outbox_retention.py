"""Matching: how far the outreach-event outbox has been purged by retention.

A stream cursor at or after this id has missed nothing; an older one would silently skip
purged events, so the stream refuses it and the consumer resynchronises.

Revision ID: m004_outbox_retention
Revises: m003_double_payments
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m004_outbox_retention"
down_revision: str | None = "m003_double_payments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "matching"


def upgrade() -> None:
    op.create_table(
        "outbox_retention",
        sa.Column("id", sa.SmallInteger(), primary_key=True),
        sa.Column("purged_through", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_outbox_retention_single_row"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("outbox_retention", schema=SCHEMA)
