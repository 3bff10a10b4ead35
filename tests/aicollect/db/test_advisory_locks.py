"""Advisory locks (``aicollect.db.locks``) against a real PostgreSQL: held outside any
transaction for as long as the holder runs, exclusive between two engines standing for
two replicas, released on exit and on cancellation, and a lost lock connection is noticed.

The engines here run with ``idle_in_transaction_session_timeout`` lowered to 1 s, so a
lock held inside a transaction (as the sync and refresh locks used to be) would be ended
by PostgreSQL within the test."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.db.engine import make_engine
from aicollect.db.locks import APPLICATION_NAME, AdvisoryLock, AdvisoryLockLost, LockConnections
from tests.conftest import _dsn
from tests.helpers.replicas import IDLE_TIMEOUT, engine

__all__ = ["engine"]  # the fixture, re-used: the lowered timeout

KEY = "test-lock:acme"


@pytest_asyncio.fixture
async def replicas(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    first = make_engine(database_url, pool_size=2, server_settings=IDLE_TIMEOUT)
    second = make_engine(database_url, pool_size=2, server_settings=IDLE_TIMEOUT)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


@pytest_asyncio.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(_dsn(database_url))
    try:
        yield conn
    finally:
        await conn.close()


async def lock_sessions(admin: asyncpg.Connection, key: str = KEY) -> list[asyncpg.Record]:
    """The lock connections of ``key`` in this database, with their transaction state."""
    return list(
        await admin.fetch(
            "SELECT pid, state, xact_start FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = $1",
            f"{APPLICATION_NAME} {key}",
        )
    )


async def taken_elsewhere(engine: AsyncEngine, key: str = KEY) -> bool:
    async with AdvisoryLock(engine, key) as probe:
        return not probe.held


async def test_a_lock_outlives_the_idle_in_transaction_timeout_and_stays_exclusive(
    replicas: tuple[AsyncEngine, AsyncEngine], admin: asyncpg.Connection
) -> None:
    first, second = replicas
    async with AdvisoryLock(first, KEY) as lock:
        assert lock.held
        await asyncio.sleep(2.5)  # more than twice the idle-in-transaction timeout
        assert lock.held
        assert not lock.lost.is_set()
        lock.check()
        assert await taken_elsewhere(second)
        [session] = await lock_sessions(admin)
        assert session["state"] == "idle"  # not "idle in transaction"
        assert session["xact_start"] is None
    assert not lock.held
    assert not await lock_sessions(admin)  # the lock connection is closed
    assert not await taken_elsewhere(second)  # and the lock free at once


async def test_waiting_for_a_lock_takes_it_when_the_holder_leaves(
    replicas: tuple[AsyncEngine, AsyncEngine],
) -> None:
    first, second = replicas
    order: list[str] = []

    async def waiter() -> None:
        async with AdvisoryLock(second, KEY, wait=True) as lock:
            assert lock.held
            order.append("second")

    async with AdvisoryLock(first, KEY, wait=True):
        task = asyncio.create_task(waiter())
        await asyncio.sleep(1.5)
        assert not task.done()
        order.append("first")
    await asyncio.wait_for(task, 10)
    assert order == ["first", "second"]


async def test_a_cancelled_holder_releases_the_lock(
    replicas: tuple[AsyncEngine, AsyncEngine], admin: asyncpg.Connection
) -> None:
    first, second = replicas
    entered = asyncio.Event()

    async def holder() -> None:
        async with AdvisoryLock(first, KEY):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(holder())
    await entered.wait()
    assert await taken_elsewhere(second)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await taken_elsewhere(second)
    assert not await lock_sessions(admin)


async def test_a_holder_whose_lock_connection_dies_is_stopped(
    replicas: tuple[AsyncEngine, AsyncEngine],
    admin: asyncpg.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second = replicas
    entered = asyncio.Event()
    progress: list[str] = []

    async def holder() -> None:
        async with AdvisoryLock(first, KEY, cancel_on_loss=True):
            entered.set()
            await asyncio.sleep(3600)
            progress.append("ran on without the lock")

    task = asyncio.create_task(holder())
    await entered.wait()
    [session] = await lock_sessions(admin)
    await admin.execute("SELECT pg_terminate_backend($1)", session["pid"])
    with caplog.at_level(logging.WARNING), pytest.raises(AdvisoryLockLost) as lost:
        await asyncio.wait_for(task, 10)
    assert "test-lock:acme" in str(lost.value)
    assert progress == []
    assert any(r.getMessage() == "advisory lock lost" for r in caplog.records)
    assert not await taken_elsewhere(second)  # the other replica can take over


async def test_a_lost_lock_is_reported_to_a_holder_that_checks(
    replicas: tuple[AsyncEngine, AsyncEngine], admin: asyncpg.Connection
) -> None:
    first, _ = replicas
    async with AdvisoryLock(first, KEY) as lock:
        [session] = await lock_sessions(admin)
        await admin.execute("SELECT pg_terminate_backend($1)", session["pid"])
        await asyncio.wait_for(lock.lost.wait(), 10)
        assert not lock.held
        with pytest.raises(AdvisoryLockLost):
            lock.check()
    # Leaving the block after a loss is quiet: nothing left to unlock.


class FreezingProxy:
    """A TCP relay to PostgreSQL that can stop relaying without closing anything: a
    network cut neither side is told about."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> FreezingProxy:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        self.flowing.set()
        assert self.server is not None
        self.server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    await self.flowing.wait()
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        await asyncio.gather(
            pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
        )


async def test_a_lock_connection_that_stops_answering_counts_as_lost(database_url: str) -> None:
    url = make_url(database_url)
    async with FreezingProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        through_proxy = url.set(host="127.0.0.1", port=proxy.port)
        engine = make_engine(
            through_proxy.render_as_string(hide_password=False), server_settings=IDLE_TIMEOUT
        )
        entered = asyncio.Event()
        progress: list[str] = []

        async def holder() -> None:
            async with AdvisoryLock(engine, KEY, cancel_on_loss=True, heartbeat_s=0.3):
                entered.set()
                await asyncio.sleep(3600)
                progress.append("ran on without the lock")

        try:
            task = asyncio.create_task(holder())
            await entered.wait()
            proxy.flowing.clear()  # the heartbeat's SELECT 1 gets no answer
            with pytest.raises(AdvisoryLockLost, match="stopped answering"):
                await asyncio.wait_for(task, 10)
            assert progress == []
        finally:
            await engine.dispose()


async def _named(admin: asyncpg.Connection, name: str) -> list[int]:
    rows = await admin.fetch(
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND application_name = $1",
        name,
    )
    return [row["pid"] for row in rows]


async def test_kept_lock_connections_are_reused_and_hold_nothing_between_locks(
    replicas: tuple[AsyncEngine, AsyncEngine], admin: asyncpg.Connection
) -> None:
    first, second = replicas
    kept = LockConnections()
    try:
        async with AdvisoryLock(first, KEY, connections=kept) as lock:
            assert lock.held
            [holder] = await _named(admin, f"{APPLICATION_NAME} {KEY}")
            assert await taken_elsewhere(second)
        # Released: the connection stays open, named as holding nothing, and the lock is free.
        assert await _named(admin, f"{APPLICATION_NAME} {KEY}") == []
        assert await _named(admin, APPLICATION_NAME) == [holder]
        assert not await taken_elsewhere(second)
        async with AdvisoryLock(first, "test-lock:other", connections=kept) as again:
            assert again.held  # on the same server process: no new connection
            assert await _named(admin, f"{APPLICATION_NAME} test-lock:other") == [holder]
        # A lock another replica holds: not taken, and the connection is still kept.
        async with AdvisoryLock(second, KEY) as other:
            assert other.held
            async with AdvisoryLock(first, KEY, connections=kept) as refused:
                assert not refused.held
            assert await _named(admin, APPLICATION_NAME) == [holder]
    finally:
        await kept.close()
    assert await _named(admin, APPLICATION_NAME) == []


async def test_a_kept_connection_that_died_is_replaced(
    replicas: tuple[AsyncEngine, AsyncEngine], admin: asyncpg.Connection
) -> None:
    first, second = replicas
    kept = LockConnections()
    try:
        async with AdvisoryLock(first, KEY, connections=kept):
            pass
        [idle] = await _named(admin, APPLICATION_NAME)
        await admin.execute("SELECT pg_terminate_backend($1)", idle)
        async with AdvisoryLock(first, KEY, connections=kept) as lock:
            assert lock.held
            [holder] = await _named(admin, f"{APPLICATION_NAME} {KEY}")
            assert holder != idle
            assert await taken_elsewhere(second)
    finally:
        await kept.close()
