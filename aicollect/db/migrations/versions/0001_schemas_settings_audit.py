"""Schemas integration and matching; tenants, settings, audit events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _settings_table(schema: str) -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("value", postgresql.JSONB(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=schema,
    )


def _audit_table(schema: str) -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Text(), nullable=True),
        sa.Column("subject_type", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema=schema,
    )
    op.create_index(
        f"ix_{schema}_audit_events_tenant_id", "audit_events", ["tenant_id"], schema=schema
    )
    op.create_index(
        f"ix_{schema}_audit_events_created_at", "audit_events", ["created_at"], schema=schema
    )


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS integration")
    op.execute("CREATE SCHEMA IF NOT EXISTS matching")
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.Text(), primary_key=True),
        sa.Column("qbo_enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        schema="integration",
    )
    for schema in ("integration", "matching"):
        _settings_table(schema)
        _audit_table(schema)


def downgrade() -> None:
    op.execute("DROP SCHEMA IF EXISTS matching CASCADE")
    op.execute("DROP SCHEMA IF EXISTS integration CASCADE")
