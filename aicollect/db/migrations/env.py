"""Alembic environment: one history for both schemas (each table owned by one service)."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.integration.models import Base as IntegrationBase
from services.matcher.models import Base as MatchingBase

target_metadata = [IntegrationBase.metadata, MatchingBase.metadata]
SCHEMAS = ("integration", "matching")


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    if type_ == "schema":
        return name in SCHEMAS
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_schemas=True,
        include_name=_include_name,
        version_table_schema="public",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def _run_in_new_loop() -> None:
    asyncio.run(_run_async())


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")

# Alembic may be invoked from inside a running loop's worker thread; always use a fresh loop.
_run_in_new_loop()
