"""Matching: find the placements an unread payment resolved out of band quickly. Every
payment read for the first time locks them with the others it concerns (a payment no
longer on an invoice whose version resolved the placement on it); without an index that
part of the statement read every placement of the company. Not a partial index: the
statement binds the status as a parameter, which a generic prepared plan cannot match to an
index predicate.

Revision ID: m009_placements_cause_index
Revises: m008_provider_neutral
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "m009_placements_cause_index"
down_revision: str | None = "m008_provider_neutral"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_placements_cause",
        "placements",
        ["tenant_id", "provider", "company_id", "cause_payment_id"],
        schema="matching",
    )


def downgrade() -> None:
    op.drop_index("ix_placements_cause", table_name="placements", schema="matching")
