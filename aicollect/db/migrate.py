"""Alembic, configured in code: ``aicollect migrate`` and the tests call ``upgrade``.

One history with a common root (``0001``: both schemas) and one branch per owning
service: revisions ``m0NN_*`` (branch label ``matching``) change only schema ``matching``,
revisions ``i0NN_*`` (branch label ``integration``) only schema ``integration``. The two
services evolve their tables independently; ``heads`` applies both branches.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Runs the migrations (blocking; call via ``asyncio.to_thread`` from async code)."""
    command.upgrade(alembic_config(database_url), revision)


async def upgrade_async(database_url: str, revision: str = "heads") -> None:
    await asyncio.to_thread(upgrade, database_url, revision)
