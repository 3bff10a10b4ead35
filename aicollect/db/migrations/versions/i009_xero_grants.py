"""Integration: grants stored once when one grant covers several companies (Xero).

A Xero token belongs to a Xero user and reaches every organisation that user connected
to our app, so several connections (one per tenant and organisation) can share it. The
grant's sealed tokens live once in ``grants`` (refreshed under one lock keyed by the
grant); a connection points at it with ``grant_id`` and keeps the platform's id of its
own organisation link (``platform_connection_id``: Xero's ``/connections`` id, which
disconnects that organisation alone). QBO connections keep their tokens on their row.

``sync_states.placed_reread_at``: when the safety-net poll last re-read every placed
invoice by id (Xero's change times miss some edits).

Revision ID: i009
Revises: i008
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aicollect.db.columns import timestamp as _ts

revision: str = "i009"
down_revision: str | None = "i008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.create_table(
        "grants",
        sa.Column("grant_id", sa.Text(), primary_key=True),
        sa.Column("provider", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("access_token", sa.Text()),
        sa.Column("refresh_token", sa.Text()),
        _ts("access_expires_at"),
        _ts("refresh_expires_at"),
        sa.Column("token_generation", sa.BigInteger(), nullable=False, server_default="0"),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        schema=S,
    )
    op.create_index(
        "uq_grants_provider_subject", "grants", ["provider", "subject"], unique=True, schema=S
    )
    op.add_column("connections", sa.Column("grant_id", sa.Text()), schema=S)
    op.add_column("connections", sa.Column("platform_connection_id", sa.Text()), schema=S)
    op.create_index("ix_connections_grant", "connections", ["grant_id"], schema=S)
    op.add_column("sync_states", _ts("placed_reread_at"), schema=S)


def downgrade() -> None:
    op.drop_column("sync_states", "placed_reread_at", schema=S)
    op.drop_index("ix_connections_grant", table_name="connections", schema=S)
    op.drop_column("connections", "platform_connection_id", schema=S)
    op.drop_column("connections", "grant_id", schema=S)
    op.drop_table("grants", schema=S)
