"""Column builders the Alembic revisions share (a migration keeps its own table shapes)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa


def timestamp(name: str, *, nullable: bool = True, now: bool = False) -> sa.Column[Any]:
    """A ``timestamptz`` column, defaulting to ``now()`` when asked."""
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        nullable=nullable,
        server_default=sa.func.now() if now else None,
    )
