"""The per-realm sync lock between two replicas, with PostgreSQL's idle-in-transaction
timeout lowered to 1 s: a backfill that outlives it keeps its exclusivity and finishes
cleanly; a backfill whose lock connection dies stops and is resumed, never run twice at
once. Both replicas run the real scheduler on their own engine against one database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import asyncpg
import grpc
import pytest
import pytest_asyncio

from aicollect.db.locks import APPLICATION_NAME
from services.integration.deps import IntegrationDeps
from services.integration.sync import state
from services.integration.sync.runner import SyncRunner
from tests.conftest import REALM_ID, Emulator, _dsn
from tests.helpers.replicas import engine, replica
from tests.services.integration.sync.conftest import (
    TENANT,
    Control,
    eventually,
    overdue_in_books,
    placements,
    sync_row,
)

LOCK_NAME = f"{APPLICATION_NAME} {state.BACKFILL_LOCK}:{TENANT}:{REALM_ID}"
__all__ = ["engine"]  # the fixture, re-used: replica one's engine with the lowered timeout


@pytest_asyncio.fixture
async def replica_two(
    database_url: str, emulator: Emulator, matcher_addr: str
) -> AsyncIterator[IntegrationDeps]:
    env = {"AICOLLECT_SYNC_TICK_SECONDS": "0.05", "AICOLLECT_BACKFILL_RETRY_SECONDS": "1"}
    async with replica(database_url, emulator.url, matcher_addr, **env) as deps:
        yield deps


@contextlib.asynccontextmanager
async def schedulers(*replicas: IntegrationDeps) -> AsyncIterator[None]:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(SyncRunner(deps.sync).run(stop)) for deps in replicas]
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)


async def slow_api(control: Control) -> None:
    """Every QBO API call takes 1.5 s: the backfill lasts several idle timeouts."""
    await control("PUT", "/faults", {"latency_ms": 1500, "scope": ["api"]})


async def test_a_backfill_longer_than_the_idle_timeout_keeps_its_lock_and_finishes(
    connected: grpc.aio.Channel,
    deps: IntegrationDeps,
    replica_two: IntegrationDeps,
    control: Control,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await slow_api(control)
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    async with schedulers(deps, replica_two):
        await eventually(lambda: _phase_is(deps, state.RUNNING))
        started = loop.time()
        # Neither replica can take the realm's lock while the backfill runs: whenever a
        # probe gets it, the backfill is over.
        done = False
        while not done:
            await asyncio.sleep(0.25)
            for replica in (deps, replica_two):
                async with state.realm_lock(
                    replica.engine, state.BACKFILL_LOCK, TENANT, REALM_ID
                ) as held:
                    phase = (await sync_row(deps)).backfill_phase
                    assert not held or phase == state.COMPLETED, phase
                    done = done or held
        # It ran for several idle-in-transaction timeouts (1 s) holding the lock.
        assert loop.time() - started > 3.0
    row = await sync_row(deps)
    assert row.backfill_last_error == ""
    assert row.backfill_attempts == 0
    messages = [r.getMessage() for r in caplog.records]
    assert "sync job failed" not in messages
    assert "advisory lock lost" not in messages
    assert set(await placements(deps)) == set(overdue_in_books(emulator))


async def test_a_backfill_whose_lock_connection_dies_stops_and_resumes(
    connected: grpc.aio.Channel,
    deps: IntegrationDeps,
    replica_two: IntegrationDeps,
    control: Control,
    emulator: Emulator,
    database_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await slow_api(control)
    caplog.set_level(logging.WARNING)
    admin = await asyncpg.connect(_dsn(database_url))
    try:
        async with schedulers(deps, replica_two):
            await eventually(lambda: _phase_is(deps, state.RUNNING))
            pid = await admin.fetchval(
                "SELECT pid FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = $1",
                LOCK_NAME,
            )
            assert pid is not None
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await eventually(
                lambda: _logged(caplog, "sync job stopped: it lost its realm lock"), within=10
            )
            await eventually(lambda: _phase_is(deps, state.COMPLETED), within=60)
    finally:
        await admin.close()
    assert "sync job failed" not in [r.getMessage() for r in caplog.records]
    # Resumed from its checkpoint, never run twice at once: one placement per invoice.
    assert set(await placements(deps)) == set(overdue_in_books(emulator))


async def _phase_is(deps: IntegrationDeps, phase: str) -> bool:
    return (await sync_row(deps)).backfill_phase == phase


async def _logged(caplog: pytest.LogCaptureFixture, message: str) -> bool:
    return any(r.getMessage() == message for r in caplog.records)
