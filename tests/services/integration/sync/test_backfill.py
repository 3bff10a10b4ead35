"""The backfill against a 10,000-invoice company (30 % overdue): exactly the right
placements with contact details, idempotent re-runs, resume after a crash, 429 bursts."""

from __future__ import annotations

import asyncio
import logging
import time

import grpc
import pytest

from aicollect.integration.v1 import integration_service_pb2 as pb
from emulators.qbo.config import CompanySpec
from services.integration.deps import IntegrationDeps
from services.integration.sync import state
from services.integration.sync.backfill import run_backfill
from services.integration.sync.runner import SyncRunner
from tests.conftest import REALM_ID, Emulator
from tests.services.integration.sync.conftest import (
    TENANT,
    TODAY,
    Control,
    assert_matches_books,
    backfill,
    eventually,
    overdue_in_books,
    placements,
    status,
    stub,
    sync_row,
)

INVOICES = 10_000


@pytest.fixture
def company() -> CompanySpec:
    return CompanySpec(
        realm_id=REALM_ID,
        name="Big Books Inc.",
        customers=400,
        invoices=INVOICES,
        overdue_fraction=0.3,
        today=TODAY,
        seed=11,
    )


async def test_connect_backfills_exactly_the_overdue_invoices_and_a_rerun_changes_nothing(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator
) -> None:
    # CompleteConnection queued the backfill (durably); the dashboard sees it in progress.
    queued = await status(connected)
    assert queued.backfill.phase == pb.BACKFILL_PHASE_RUNNING
    assert not queued.HasField("sync") or not queued.sync.HasField("last_cdc_poll_time")

    stop = asyncio.Event()
    runner = asyncio.create_task(SyncRunner(deps.sync).run(stop))
    try:
        deps.sync.trigger.poke()

        async def completed() -> bool:
            return (await status(connected)).backfill.phase == pb.BACKFILL_PHASE_COMPLETED

        await eventually(completed, within=45)
    finally:
        stop.set()
        await runner

    done = await status(connected)
    expected = overdue_in_books(emulator)
    assert done.backfill.invoices_seen == len(expected)
    assert done.backfill.placements_created == len(expected)
    assert done.backfill.HasField("start_time")
    assert done.backfill.HasField("finish_time")
    assert done.backfill.last_error == ""
    first = await placements(deps)
    assert_matches_books(emulator, first, invoices=INVOICES)

    # A second (full) backfill: every overdue invoice again, nothing created or changed.
    again = await stub(connected).SyncNow(
        pb.SyncNowRequest(tenant_id=TENANT, mode=pb.SYNC_MODE_FULL, actor="support")
    )
    assert again.started
    assert again.backfill.phase == pb.BACKFILL_PHASE_RUNNING
    busy = await stub(connected).SyncNow(
        pb.SyncNowRequest(tenant_id=TENANT, mode=pb.SYNC_MODE_FULL, actor="support")
    )
    assert not busy.started  # one backfill per connection at a time
    await backfill(deps)
    rerun = await status(connected)
    assert rerun.backfill.phase == pb.BACKFILL_PHASE_COMPLETED
    assert rerun.backfill.invoices_seen == len(expected)
    assert rerun.backfill.placements_created == 0
    second = await placements(deps)
    assert {k: (p.placement_id, p.version) for k, p in second.items()} == {
        k: (p.placement_id, p.version) for k, p in first.items()
    }


async def test_a_crash_mid_backfill_resumes_from_the_checkpoint_without_duplicates(
    connected: grpc.aio.Channel,
    deps: IntegrationDeps,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    task = asyncio.create_task(backfill(deps))

    async def past_first_page() -> bool:
        return (await sync_row(deps)).backfill_next_position > 1

    await eventually(past_first_page, every=0.005)
    task.cancel()  # the process dies mid-run (between or during pages)
    with pytest.raises(asyncio.CancelledError):
        await task
    crashed = await sync_row(deps)
    assert crashed.backfill_phase == state.RUNNING
    checkpoint = crashed.backfill_next_position
    assert 1 < checkpoint < len(overdue_in_books(emulator))
    placed_before = await placements(deps)
    assert len(placed_before) >= crashed.backfill_placements_created > 0

    # The lock died with the crashed run; the resumed run starts at the checkpoint.
    caplog.set_level(logging.INFO, logger="services.integration.sync.backfill")
    await backfill(deps)
    resumed = [r for r in caplog.records if r.getMessage() == "backfill running"]
    assert [r.position for r in resumed] == [checkpoint]  # type: ignore[attr-defined]

    final = await sync_row(deps)
    assert final.backfill_phase == state.COMPLETED
    assert final.backfill_invoices_seen == len(overdue_in_books(emulator))
    got = await placements(deps)  # asserts one placement per invoice
    assert_matches_books(emulator, got, invoices=INVOICES)
    assert final.backfill_placements_created == len(got)
    for invoice_id, placement in placed_before.items():
        assert got[invoice_id].placement_id == placement.placement_id


async def test_a_burst_of_429s_slows_the_backfill_but_loses_nothing(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    await control("PUT", "/faults", {"throttle_count": 3, "retry_after": 1})
    started = time.monotonic()
    await backfill(deps)
    took = time.monotonic() - started
    assert emulator.state.throttled[REALM_ID] == 3
    assert deps.caller.budget.throttle_pauses >= 1
    assert took >= 1.0  # the realm paused for Intuit's Retry-After
    assert (await sync_row(deps)).backfill_phase == state.COMPLETED
    assert_matches_books(emulator, await placements(deps), invoices=INVOICES)


async def test_an_error_mid_backfill_fails_it_and_the_retry_resumes(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    """Intuit keeps failing (5xx after the retries): the run is FAILED with the reason, and
    the scheduler resumes it from its checkpoint once Intuit recovers."""
    await control("PUT", "/faults", {"error_rate": 1.0, "error_status": 503})
    stop = asyncio.Event()
    runner = asyncio.create_task(SyncRunner(deps.sync).run(stop))
    try:

        async def failed() -> bool:
            return (await status(connected)).backfill.phase == pb.BACKFILL_PHASE_FAILED

        await eventually(failed)
        shown = (await status(connected)).backfill
        assert "unavailable" in shown.last_error.lower()
        assert shown.HasField("finish_time")
        await control("DELETE", "/faults")

        async def completed() -> bool:
            return (await status(connected)).backfill.phase == pb.BACKFILL_PHASE_COMPLETED

        await eventually(completed, within=45)
    finally:
        stop.set()
        await runner
    assert_matches_books(emulator, await placements(deps), invoices=INVOICES)


async def test_one_backfill_per_connection_across_processes(
    connected: grpc.aio.Channel, deps: IntegrationDeps
) -> None:
    """The realm lock is a PostgreSQL advisory lock: a second holder is refused."""
    async with state.realm_lock(deps.engine, state.BACKFILL_LOCK, TENANT, REALM_ID) as first:
        assert first
        async with state.realm_lock(deps.engine, state.BACKFILL_LOCK, TENANT, REALM_ID) as second:
            assert not second
    async with state.realm_lock(deps.engine, state.BACKFILL_LOCK, TENANT, REALM_ID) as again:
        assert again


async def test_nothing_to_run_without_a_request(deps: IntegrationDeps) -> None:
    assert await run_backfill(deps.sync, TENANT, REALM_ID) is None
