"""The engine's pool hands out only live connections, without a round trip per checkout."""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_the_server_ended_is_replaced_before_use(
    engine: AsyncEngine, database_url: str
) -> None:
    first = await _backend_pid(engine)  # back in the pool, idle
    admin = await asyncpg.connect(
        make_url(database_url).set(drivername="postgresql").render_as_string(False)
    )
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first) is True
    finally:
        await admin.close()
    await asyncio.sleep(0.2)  # the server's goodbye reaches the pooled connection's socket
    # The next checkout gets a new, working connection instead of failing the caller.
    second = await _backend_pid(engine)
    assert second != first


async def test_a_checkout_costs_no_extra_transaction(engine: AsyncEngine) -> None:
    """A pre-ping is a transaction (BEGIN, a query, ROLLBACK) per checkout: none is made."""

    async def transactions() -> int:
        async with engine.connect() as conn:
            # The counters of this backend's transactions so far reach the shared statistics
            # when this transaction ends (otherwise at most once a second).
            await conn.execute(text("SELECT pg_stat_force_next_flush()"))
            await conn.commit()
            value = await conn.scalar(
                text(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                    " WHERE datname = current_database()"
                )
            )
            await conn.rollback()
        return int(value)

    await _backend_pid(engine)  # the pool holds a connection
    before = await transactions()
    for _ in range(10):
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await conn.rollback()
    after = await transactions()
    # Ten checkouts with one transaction each, and the counting's own (the first count's
    # read, the second's flush): a pre-ping would have added ten more.
    assert after - before == 12
