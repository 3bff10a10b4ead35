"""Integration: placement candidates (preview, then confirm) and each tenant's intake mode.

After a connection's first backfill the invoices the rules select wait as candidates
(``placement_candidates``) until the creditor confirms them; ``placement_intake`` holds
the tenant's choice for what comes after (``automatic`` or ``confirm_each_time``), and
``preview`` until the first confirmation.

Tenants that already have placements from the sync confirmed them under the old
behaviour (placed at once): they start in ``automatic``, so nothing changes for them.

Revision ID: i008
Revises: i007
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aicollect.db.columns import timestamp as _ts

revision: str = "i008"
down_revision: str | None = "i007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.create_table(
        "placement_intake",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("provider", sa.Text(), primary_key=True),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("confirmations", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("updated_by", sa.Text(), nullable=False),
        _ts("updated_at", nullable=False, now=True),
        schema=S,
    )
    op.create_table(
        "placement_candidates",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("realm_id", sa.Text(), primary_key=True),
        sa.Column("invoice_id", sa.Text(), primary_key=True),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Text(), nullable=False),
        sa.Column("customer_name", sa.Text(), nullable=False, server_default=""),
        sa.Column("doc_number", sa.Text(), nullable=False, server_default=""),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("balance_minor", sa.BigInteger(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("sync_token", sa.Text(), nullable=False, server_default=""),
        sa.Column("rules_version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("drop_reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("status_actor", sa.Text(), nullable=False, server_default=""),
        sa.Column("status_reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("placement_id", sa.Text(), nullable=False, server_default=""),
        sa.Column("staged_by_run", sa.Text(), nullable=False, server_default=""),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        schema=S,
    )
    op.create_index(
        "ix_placement_candidates_status",
        "placement_candidates",
        ["tenant_id", "realm_id", "status", "invoice_id"],
        schema=S,
    )
    # Tenants placed at once before this revision keep that behaviour.
    op.execute(
        f"INSERT INTO {S}.placement_intake (tenant_id, provider, mode, confirmations, updated_by) "
        f"SELECT DISTINCT p.tenant_id, c.provider, 'automatic', 0, 'migration i007' "
        f"FROM {S}.placed_invoices p JOIN {S}.connections c ON c.tenant_id = p.tenant_id"
    )


def downgrade() -> None:
    op.drop_index("ix_placement_candidates_status", table_name="placement_candidates", schema=S)
    op.drop_table("placement_candidates", schema=S)
    op.drop_table("placement_intake", schema=S)
