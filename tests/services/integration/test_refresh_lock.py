"""The token-refresh lock holds no transaction open across the call to Intuit: with
PostgreSQL's idle-in-transaction timeout lowered to 1 s and Intuit's token endpoint slowed
to 2.5 s, two replicas refreshing at once make one refresh, both get the new token, and
no session of the database is ever "idle in transaction" meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import grpc
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.integration.deps import IntegrationDeps
from tests.conftest import Emulator, _dsn
from tests.helpers.connections import TENANT, expire_access_token
from tests.helpers.replicas import engine, replica

__all__ = ["engine"]  # the fixture, re-used: the lowered timeout


@pytest_asyncio.fixture
async def replica_two(
    database_url: str, emulator: Emulator, matcher_addr: str
) -> AsyncIterator[IntegrationDeps]:
    async with replica(database_url, emulator.url, matcher_addr) as deps:
        yield deps


async def test_a_slow_refresh_holds_no_transaction_open(
    connected: grpc.aio.Channel,
    integration_deps: IntegrationDeps,
    replica_two: IntegrationDeps,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
    database_url: str,
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{emulator.url}/_emulator/faults", json={"latency_ms": 2500, "scope": ["token"]}
        ) as resp,
    ):
        assert resp.status == 200
    await expire_access_token(sessions)
    before = emulator.state.oauth.token_calls["refresh_token"]
    admin = await asyncpg.connect(_dsn(database_url))
    try:
        refreshes = asyncio.gather(
            integration_deps.tokens.access_token(TENANT),
            replica_two.tokens.access_token(TENANT),
        )
        seen: set[tuple[str, str]] = set()
        held_open: list[tuple[str, float]] = []
        while not refreshes.done():
            rows = await admin.fetch(
                "SELECT application_name, state, "
                "extract(epoch FROM now() - state_change)::float8 AS for_s "
                "FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            seen |= {(r["application_name"], r["state"]) for r in rows}
            # A short transaction is idle in transaction for an instant between two of its
            # statements; one held open across the 2.5 s call to Intuit is not.
            held_open += [
                (r["application_name"], r["for_s"])
                for r in rows
                if (r["state"] or "").startswith("idle in transaction") and r["for_s"] > 0.3
            ]
            await asyncio.sleep(0.1)
        first, second = await refreshes
    finally:
        await admin.close()
    assert not held_open, held_open
    # The holder's lock sat on its own connection, outside a transaction, while Intuit
    # answered; the other replica's lock request waited ("active") meanwhile.
    assert (f"aicollect-lock qbo-refresh:{TENANT}", "idle") in seen
    assert (f"aicollect-lock qbo-refresh:{TENANT}", "active") in seen
    assert emulator.state.oauth.token_calls["refresh_token"] - before == 1
    assert first.token == second.token
