"""Migrations produce exactly the schema the models describe, in the two owned schemas."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.integration.models import Base as IntegrationBase
from services.matcher.models import Base as MatchingBase


async def test_migrations_match_models(engine: AsyncEngine) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        ctx = MigrationContext.configure(
            sync_conn,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, parents: (
                    type_ != "schema" or name in ("integration", "matching")
                ),
                "compare_type": True,
            },
        )
        metadata: Any = [IntegrationBase.metadata, MatchingBase.metadata]  # a list is supported
        return list(compare_metadata(ctx, metadata))

    async with engine.connect() as conn:
        differences = await conn.run_sync(diff)
    assert differences == [], f"models and migrations disagree: {differences}"


async def test_each_service_owns_its_schema(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT table_schema, table_name FROM information_schema.tables "
                    "WHERE table_schema IN ('integration', 'matching') ORDER BY 1, 2"
                )
            )
        ).all()
    tables = {(schema, name) for schema, name in rows}
    assert ("integration", "tenants") in tables
    assert ("integration", "settings") in tables
    assert ("matching", "settings") in tables
    assert {t.schema for t in IntegrationBase.metadata.tables.values()} == {"integration"}
    assert {t.schema for t in MatchingBase.metadata.tables.values()} == {"matching"}
