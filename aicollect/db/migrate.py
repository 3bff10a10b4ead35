"""Alembic, configured in code: ``aicollect migrate`` and the tests call ``upgrade``.

One history with a common root (``0001``: both schemas) and one branch per owning
service: revisions ``m0NN_*`` (branch label ``matching``) change only schema ``matching``,
revisions ``i0NN_*`` (branch label ``integration``) only schema ``integration``. The two
services evolve their tables independently; ``heads`` applies both branches.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url

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


def expected_heads() -> set[str]:
    """The head revision of every branch in this code's migration history."""
    return set(ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://")).get_heads())


async def applied_heads(database_url: str) -> set[str]:
    """The revisions the database is at (empty before the first migration)."""
    dsn = make_url(database_url).set(drivername="postgresql")
    conn = await asyncpg.connect(dsn.render_as_string(hide_password=False), timeout=10)
    try:
        exists = await conn.fetchval("SELECT to_regclass('public.alembic_version') IS NOT NULL")
        if not exists:
            return set()
        return {
            row["version_num"]
            for row in await conn.fetch("SELECT version_num FROM public.alembic_version")
        }
    finally:
        await conn.close()


async def missing_heads(database_url: str) -> set[str]:
    """What this code expects that the database lacks (empty: the schema is current).

    Alembic records only the heads a database is at; a revision that another one depends
    on is implied by it, so the check compares against everything the recorded heads imply.
    """
    applied = await applied_heads(database_url)
    script = ScriptDirectory.from_config(alembic_config("postgresql+asyncpg://"))
    implied = (
        {rev.revision for rev in script.iterate_revisions(tuple(applied), "base")}
        if applied
        else set()
    )
    return expected_heads() - implied
