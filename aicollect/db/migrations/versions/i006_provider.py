"""Integration: every connection, OAuth state, inbox row and sync cursor names its provider.

The accounting platform (``qbo`` today, ``xero`` next) becomes a column; every existing row
is QBO's (server default ``qbo``). A company id is unique per provider among live
connections, not globally: ``uq_connections_live_realm`` becomes
``uq_connections_live_provider_realm`` on ``(provider, realm_id)``.

The tenant flag ``tenants.qbo_enabled`` moves to ``tenant_providers`` (one row per tenant
and provider), every tenant's value kept as its ``qbo`` row; the platform kill switch is
already one setting per provider (``qbo_kill_switch``) and needs no change.

Revision ID: i006
Revises: i005
Depends on: i101 (the inbox table of the parallel integration branch)
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from aicollect.db.columns import timestamp as _ts

revision: str = "i006"
down_revision: str | None = "i005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = "i101"

S = "integration"
TABLES = ("oauth_states", "connections", "pending_revocations", "webhook_inbox", "sync_states")
LIVE = sa.text("state IN ('connected', 'needs_reauthorization')")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("provider", sa.Text(), nullable=False, server_default="qbo"),
            schema=S,
        )
    op.drop_index("uq_connections_live_realm", table_name="connections", schema=S)
    op.create_index(
        "uq_connections_live_provider_realm",
        "connections",
        ["provider", "realm_id"],
        unique=True,
        schema=S,
        postgresql_where=LIVE,
    )
    op.create_table(
        "tenant_providers",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("provider", sa.Text(), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        _ts("created_at", nullable=False, now=True),
        _ts("updated_at", nullable=False, now=True),
        schema=S,
    )
    op.execute(
        f"INSERT INTO {S}.tenant_providers "
        "(tenant_id, provider, enabled, updated_by, created_at, updated_at) "
        f"SELECT tenant_id, 'qbo', qbo_enabled, updated_by, created_at, updated_at FROM {S}.tenants"
    )
    op.drop_column("tenants", "qbo_enabled", schema=S)


def downgrade() -> None:
    # Only QBO rows fit the old schema (no provider, a realm unique across platforms):
    # refuse rather than drop another platform's connections or events.
    bind = op.get_bind()
    for table in (*TABLES, "tenant_providers"):
        others = bind.execute(
            sa.text(f"SELECT count(*) FROM {S}.{table} WHERE provider <> 'qbo'")
        ).scalar_one()
        if others:
            raise RuntimeError(
                f"cannot downgrade below i006: {S}.{table} holds {others} non-QBO row(s)"
            )
    op.add_column(
        "tenants",
        sa.Column("qbo_enabled", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema=S,
    )
    op.execute(
        f"UPDATE {S}.tenants t SET qbo_enabled = p.enabled FROM {S}.tenant_providers p "
        "WHERE p.tenant_id = t.tenant_id AND p.provider = 'qbo'"
    )
    op.alter_column("tenants", "qbo_enabled", server_default=None, schema=S)
    op.drop_table("tenant_providers", schema=S)
    op.drop_index("uq_connections_live_provider_realm", table_name="connections", schema=S)
    for table in TABLES:
        op.drop_column(table, "provider", schema=S)
    op.create_index(
        "uq_connections_live_realm",
        "connections",
        ["realm_id"],
        unique=True,
        schema=S,
        postgresql_where=LIVE,
    )
