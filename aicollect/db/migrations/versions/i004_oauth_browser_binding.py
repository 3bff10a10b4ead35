"""Integration: an OAuth state is bound to the browser that started the flow.

The hash (SHA-256) of the browser binding secret the gateway puts in an HttpOnly cookie.
States minted before this revision have none and are refused at the callback (they expire
within minutes anyway).

Revision ID: i004
Revises: i003
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i004"
down_revision: str | None = "i003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.add_column(
        "oauth_states", sa.Column("binding_hash", sa.LargeBinary(), nullable=True), schema=S
    )


def downgrade() -> None:
    op.drop_column("oauth_states", "binding_hash", schema=S)
