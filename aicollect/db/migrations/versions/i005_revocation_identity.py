"""Integration: a pending revocation may keep its token sealed as the connection had it.

When a connection's refresh token cannot be decrypted at disconnect time (its key was
dropped from AICOLLECT_TOKEN_KEYS), it is queued as it is, with the associated data it
was sealed under, so the revocation can proceed once the key is restored.

Revision ID: i005
Revises: i004
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "i005"
down_revision: str | None = "i004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "integration"


def upgrade() -> None:
    op.add_column(
        "pending_revocations", sa.Column("token_identity", sa.Text(), nullable=True), schema=S
    )


def downgrade() -> None:
    op.drop_column("pending_revocations", "token_identity", schema=S)
