"""Integration: per-company request budgets shared by every integration replica.

One row per (provider, realm): the start times of the requests granted in the platform's
longest window (a minute for QuickBooks), the in-flight leases (holder id -> expiry, so a
killed replica's leases lapse on their own), what each replica's queue waits with
(replica id -> [priority, expiry]: less urgent work elsewhere is refused meanwhile) and
the end of a throttling pause. Replicas update the row with single atomic
statements (``services.integration.budget.SharedBudget``); no transaction is ever held
across a call to the platform.

Revision ID: i007
Revises: i006
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "i007"
down_revision: str | None = "i006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.create_table(
        "request_budgets",
        sa.Column("provider", sa.Text(), primary_key=True),
        sa.Column("realm_id", sa.Text(), primary_key=True),
        # Epoch seconds (the database's clock) of the grants in the longest window.
        sa.Column(
            "started",
            postgresql.ARRAY(sa.Double()),
            nullable=False,
            server_default=sa.text("'{}'"),
        ),
        # {holder id: lease expiry in epoch seconds} of the requests in flight.
        sa.Column(
            "leases",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        # {replica id: [priority, expiry]} of the replicas whose queues wait for a slot.
        sa.Column(
            "waits",
            postgresql.JSONB(),
            nullable=False,
            server_default=sa.text("'{}'::jsonb"),
        ),
        sa.Column(
            "paused_until",
            sa.Double(),
            nullable=False,
            server_default=sa.text("0"),
        ),
        schema=S,
    )


def downgrade() -> None:
    op.drop_table("request_budgets", schema=S)
