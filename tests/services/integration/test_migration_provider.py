"""Migration i006: a database holding the previous schema's data gains providers, losing nothing.

The database is migrated to the revisions before i006 (``i005``, the inbox branch's
``i101`` and the matcher's head), filled as the service filled it, then upgraded to head.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from alembic import command

from aicollect.db.migrate import alembic_config, upgrade_async
from tests.conftest import _admin, _dsn, _with_database

BEFORE_I006 = ("i005", "i101", "m003")
LIVE = "('connected', 'needs_reauthorization')"


@pytest_asyncio.fixture
async def upgraded(pg_server_url: str) -> AsyncIterator[str]:
    """A fresh database (not the migrated template) migrated to the schema just before
    i006, filled with rows as the service wrote them, then upgraded to head."""
    name = f"aicollect_mig_{uuid.uuid4().hex[:12]}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}"')
    url = _with_database(pg_server_url, name)
    try:
        for revision in BEFORE_I006:
            await upgrade_async(url, revision)
        conn = await asyncpg.connect(_dsn(url))
        try:
            await _fill_previous_schema(conn)
        finally:
            await conn.close()
        await upgrade_async(url)  # heads: i006 and everything else
        yield url
    finally:
        await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _fill_previous_schema(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """
        INSERT INTO integration.tenants (tenant_id, qbo_enabled, updated_by, updated_at)
        VALUES ('acme', true, 'support', '2026-11-01T10:00:00Z'),
               ('globex', false, 'ops', '2026-11-02T10:00:00Z');
        INSERT INTO integration.oauth_states (state_hash, tenant_id, actor, expires_at)
        VALUES ('\\x01'::bytea, 'acme', 'jane', now() + interval '5 minutes');
        INSERT INTO integration.connections
            (tenant_id, realm_id, company_name, state, state_detail, token_generation)
        VALUES ('acme', '9130350', 'Acme Ltd', 'connected', '', 3),
               ('globex', '9130351', 'Globex', 'disconnected', 'by user', 5);
        INSERT INTO integration.pending_revocations
            (id, tenant_id, realm_id, token, attempts, last_error, next_attempt_at)
        VALUES ('rev1', 'globex', '9130351', 'sealed', 2, 'unreachable', now());
        INSERT INTO integration.webhook_inbox
            (event_id, dedupe_key, tenant_id, realm_id, entity, entity_id, operation,
             occurred_at, status, attempts, last_error, payload)
        VALUES ('ev1', 'k1', 'acme', '9130350', 'Invoice', '42', 'Update', now(),
                'pending', 0, '', '{"a": 1}');
        INSERT INTO integration.sync_states
            (tenant_id, realm_id, backfill_phase, backfill_run_id, backfill_requested_by,
             backfill_invoices_seen, backfill_placements_created, backfill_last_error,
             backfill_next_position, backfill_last_invoice_id, backfill_attempts,
             cdc_high_water, cdc_requested, cdc_last_error, cdc_polls, cdc_objects_applied)
        VALUES ('acme', '9130350', 'completed', 'run1', 'system', 12, 7, '', 13, '99', 0,
                '2026-11-20T10:00:00-08:00', false, '', 4, 9);
        """
    )


async def test_i006_moves_every_row_to_qbo_and_keys_realms_per_provider(upgraded: str) -> None:
    conn = await asyncpg.connect(_dsn(upgraded))
    try:
        for table, count in (
            ("oauth_states", 1),
            ("connections", 2),
            ("pending_revocations", 1),
            ("webhook_inbox", 1),
            ("sync_states", 1),
        ):
            rows = await conn.fetch(f"SELECT provider FROM integration.{table}")
            assert [r["provider"] for r in rows] == ["qbo"] * count, table
        # Nothing else about the rows changed.
        acme = await conn.fetchrow(
            "SELECT realm_id, company_name, state, token_generation "
            "FROM integration.connections WHERE tenant_id = 'acme'"
        )
        assert acme is not None
        assert tuple(acme) == ("9130350", "Acme Ltd", "connected", 3)
        sync = await conn.fetchrow(
            "SELECT backfill_placements_created, cdc_high_water FROM integration.sync_states"
        )
        assert sync is not None
        assert tuple(sync) == (7, "2026-11-20T10:00:00-08:00")
        # The tenant flag moved to one row per provider, with who set it and when.
        flags = await conn.fetch(
            "SELECT tenant_id, provider, enabled, updated_by, updated_at "
            "FROM integration.tenant_providers ORDER BY tenant_id"
        )
        assert [(r[0], r[1], r[2], r[3]) for r in flags] == [
            ("acme", "qbo", True, "support"),
            ("globex", "qbo", False, "ops"),
        ]
        assert flags[0]["updated_at"].isoformat().startswith("2026-11-01T10:00:00")
        columns = {
            r["column_name"]
            for r in await conn.fetch(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = 'integration' AND table_name = 'tenants'"
            )
        }
        assert "qbo_enabled" not in columns  # one source of truth
        # A company id is unique per provider among live connections, not globally.
        await conn.execute(
            "INSERT INTO integration.connections (tenant_id, provider, realm_id, company_name, "
            "state, state_detail, token_generation) "
            "VALUES ('initech', 'xero', '9130350', 'Initech', 'connected', '', 1)"
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO integration.connections (tenant_id, provider, realm_id, "
                "company_name, state, state_detail, token_generation) "
                "VALUES ('hooli', 'qbo', '9130350', 'Hooli', 'connected', '', 1)"
            )
        # A row written without a provider (code predating the column) is QBO's.
        await conn.execute(
            "INSERT INTO integration.oauth_states (state_hash, tenant_id, actor, expires_at) "
            "VALUES ('\\x02'::bytea, 'acme', 'jane', now())"
        )
        assert (
            await conn.fetchval(
                "SELECT provider FROM integration.oauth_states WHERE state_hash = '\\x02'::bytea"
            )
            == "qbo"
        )
    finally:
        await conn.close()


async def test_i006_downgrade_restores_the_flag_and_refuses_to_drop_other_providers(
    upgraded: str,
) -> None:
    dsn, url = _dsn(upgraded), upgraded
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "INSERT INTO integration.connections (tenant_id, provider, realm_id, company_name, "
            "state, state_detail, token_generation) "
            "VALUES ('initech', 'xero', 'abc', 'Initech', 'connected', '', 1)"
        )
    finally:
        await conn.close()
    with pytest.raises(RuntimeError, match="non-QBO"):
        await asyncio.to_thread(command.downgrade, alembic_config(url), "i005")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM integration.connections WHERE provider = 'xero'")
    finally:
        await conn.close()
    await asyncio.to_thread(command.downgrade, alembic_config(url), "i005")
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT tenant_id, qbo_enabled FROM integration.tenants ORDER BY tenant_id"
        )
        assert [tuple(r) for r in rows] == [("acme", True), ("globex", False)]
        assert await conn.fetchval("SELECT count(*) FROM integration.connections") == 2
    finally:
        await conn.close()
