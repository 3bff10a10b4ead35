"""Matching: find a customer's unapplied QBO payments quickly (they pause the placements
whose balance they cover, checked whenever a balance falls).

Revision ID: m005_unapplied_payments_index
Revises: m004_outbox_retention
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "m005_unapplied_payments_index"
down_revision: str | None = "m004_outbox_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_qbo_payments_unapplied",
        "qbo_payments",
        ["tenant_id", "realm_id", "qbo_customer_id"],
        schema="matching",
        postgresql_where=sa.text("unapplied_minor_units > 0 AND state = 'active'"),
    )


def downgrade() -> None:
    op.drop_index("ix_qbo_payments_unapplied", table_name="qbo_payments", schema="matching")
