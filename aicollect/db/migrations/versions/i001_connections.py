"""Integration: OAuth states, connections with sealed tokens, pending revocations.

Revision ID: i001
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aicollect.db.columns import timestamp as _ts

revision: str = "i001"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = ("integration",)
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.create_table(
        "oauth_states",
        sa.Column("state_hash", sa.LargeBinary(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        _ts("created_at", nullable=False, now=True),
        _ts("expires_at", nullable=False),
        _ts("consumed_at"),
        schema=S,
    )
    op.create_table(
        "connections",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("realm_id", sa.Text(), nullable=True),
        sa.Column("company_name", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("state_detail", sa.Text(), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("refresh_token", sa.Text(), nullable=True),
        _ts("access_expires_at"),
        _ts("refresh_expires_at"),
        _ts("refresh_hard_expires_at"),
        sa.Column("token_generation", sa.BigInteger(), nullable=False),
        _ts("connected_at"),
        _ts("disconnected_at"),
        sa.Column("disconnect_origin", sa.Text(), nullable=True),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        schema=S,
    )
    op.create_index(
        "uq_connections_live_realm",
        "connections",
        ["realm_id"],
        unique=True,
        schema=S,
        postgresql_where=sa.text("state IN ('connected', 'needs_reauthorization')"),
    )
    op.create_table(
        "pending_revocations",
        sa.Column("id", sa.Text(), primary_key=True),
        sa.Column("tenant_id", sa.Text(), nullable=False),
        sa.Column("realm_id", sa.Text(), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("attempts", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        _ts("next_attempt_at", nullable=False),
        _ts("created_at", nullable=False, now=True),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("pending_revocations", schema=S)
    op.drop_index("uq_connections_live_realm", table_name="connections", schema=S)
    op.drop_table("connections", schema=S)
    op.drop_table("oauth_states", schema=S)
