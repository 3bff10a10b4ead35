"""The kill switch stops backfills and polls within seconds, the scheduler does not spin
while it is on, and everything resumes cleanly (from the checkpoint) once it is lifted."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from aicollect.integration.v1 import integration_service_pb2 as pb
from emulators.qbo.config import CompanySpec
from services.integration import admin
from services.integration.deps import IntegrationDeps
from services.integration.sync import state
from services.integration.sync.runner import KILL_SWITCH_NOTE, SyncRunner
from tests.conftest import REALM_ID, Emulator
from tests.services.integration.sync.conftest import (
    TENANT,
    TODAY,
    Control,
    eventually,
    overdue_in_books,
    placements,
    status,
    stub,
    sync_row,
)


@pytest.fixture
def company() -> CompanySpec:
    return CompanySpec(
        realm_id=REALM_ID, customers=400, invoices=20_000, overdue_fraction=0.3, today=TODAY, seed=2
    )


async def _kill_switch(deps: IntegrationDeps, on: bool) -> None:
    async with deps.sessions.begin() as session:
        await admin.update_platform_settings(
            session, {"qbo_kill_switch": on}, actor="oncall", reason="incident drill"
        )


async def test_kill_switch_stops_and_resumes_the_backfill_and_polls(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    await control("PUT", "/faults", {"latency_ms": 150})
    requests = emulator.state.api_requests
    runner = SyncRunner(deps.sync)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:

        async def first_page_done() -> bool:
            return (await sync_row(deps)).backfill_next_position > 1

        await eventually(first_page_done)
        await _kill_switch(deps, True)

        async def stopped() -> bool:
            return not runner.jobs

        await eventually(stopped, within=5)  # the in-flight call finishes, nothing after it
        frozen = requests[REALM_ID]
        row = await sync_row(deps)
        assert row.backfill_phase == state.RUNNING
        assert row.backfill_last_error == KILL_SWITCH_NOTE
        shown = await status(connected)
        assert shown.qbo_kill_switch
        assert shown.backfill.phase == pb.BACKFILL_PHASE_RUNNING
        assert "kill switch" in shown.backfill.last_error
        # While it is on: nothing reaches Intuit, nothing is started, even when asked.
        await state.update_state(deps.sessions, TENANT, REALM_ID, cdc_requested=True)
        deps.sync.trigger.poke()
        await asyncio.sleep(0.5)  # ten scheduler ticks
        assert requests[REALM_ID] == frozen
        assert not runner.jobs
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub(connected).SyncNow(pb.SyncNowRequest(tenant_id=TENANT, actor="support"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        placed_while_off = len(await placements(deps))
        assert 0 < placed_while_off < len(overdue_in_books(emulator))

        await _kill_switch(deps, False)
        await control("DELETE", "/faults")

        async def finished() -> bool:
            row = await sync_row(deps)
            return row.backfill_phase == state.COMPLETED and row.cdc_polls >= 1

        await eventually(finished, within=90)  # 150 ms per call before the faults are lifted
    finally:
        stop.set()
        await task
    row = await sync_row(deps)
    assert row.backfill_last_error == ""
    assert row.cdc_last_error == ""
    assert set(await placements(deps)) == set(overdue_in_books(emulator))
