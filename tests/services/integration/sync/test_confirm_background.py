"""A confirmation of placement candidates is recorded at once and carried out in the
background: the request answers ``confirming`` before the candidates are placed, the run
places every candidate exactly once, a run stopped half-way is taken up by the workers
and places nothing twice, and a candidate paid meanwhile is dropped, never placed."""

from __future__ import annotations

import asyncio
from collections import Counter

import grpc
import pytest
from sqlalchemy import select

from aicollect.provider import Provider
from emulators.qbo.config import CompanySpec
from services.integration.deps import IntegrationDeps
from services.integration.models import AuditEvent
from services.integration.sync import confirm, confirmations
from services.integration.sync.confirmations import ConfirmationView
from tests.conftest import REALM_ID, Emulator
from tests.services.integration.sync.conftest import (
    TENANT,
    TODAY,
    Control,
    eventually,
    overdue_in_books,
    placements,
)


@pytest.fixture
def company() -> CompanySpec:
    return CompanySpec(
        realm_id=REALM_ID, name="Slow Books Ltd", customers=12, invoices=90, today=TODAY, seed=11
    )


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(confirm, "BATCH", 5)  # many batches: a run can be caught mid-way


async def _latest(deps: IntegrationDeps) -> ConfirmationView:
    async with deps.sessions() as session:
        found = await confirmations.latest(session, TENANT, REALM_ID)
    assert found is not None
    return found


async def _until_confirmed(deps: IntegrationDeps, within: float = 120.0) -> ConfirmationView:
    async def done() -> bool:
        return (await _latest(deps)).state != confirmations.RUNNING

    await eventually(done, within=within)
    return await _latest(deps)


async def _placed_by_audit(deps: IntegrationDeps) -> Counter[str]:
    """How many times each invoice was recorded as placed by a confirmation."""
    async with deps.sessions() as session:
        details = (
            await session.execute(
                select(AuditEvent.details).where(
                    AuditEvent.tenant_id == TENANT, AuditEvent.action == "candidates.placed"
                )
            )
        ).scalars()
        return Counter(i for d in details for i in d["placements"])


async def test_a_large_confirmation_answers_at_once_and_places_everything_once(
    connected_new: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    overdue = overdue_in_books(emulator)
    await control("PUT", "/faults", {"latency_ms": 60})  # every re-read takes a while
    result = await confirm.confirm(deps.sync, TENANT, Provider.QBO, actor="jane", wait_s=0.2)
    # The reply comes before the work is done: recorded, counted, still placing.
    assert result.confirmation.state == confirmations.RUNNING
    assert result.confirmation.total == len(overdue)
    assert result.confirmation.remaining > 0
    assert result.placed < len(overdue)
    # A second confirmation meanwhile is refused and changes nothing.
    with pytest.raises(confirm.ConfirmationRunning):
        await confirm.confirm(deps.sync, TENANT, Provider.QBO, actor="jane")

    done = await _until_confirmed(deps)
    assert done.state == confirmations.DONE
    assert (done.placed, done.dropped, done.remaining) == (len(overdue), 0, 0)
    assert set(await placements(deps)) == set(overdue)  # placements() refuses two of one
    assert set((await _placed_by_audit(deps)).values()) == {1}


async def test_a_run_stopped_half_way_is_resumed_by_the_worker_and_places_nothing_twice(
    connected_new: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    overdue = overdue_in_books(emulator)
    # Paid in the books after the preview was staged, before its batch is re-read: the
    # last invoice id is re-read last.
    paid = overdue[max(overdue)]  # candidates are re-read in invoice id order
    await control("PUT", "/faults", {"latency_ms": 80})
    result = await confirm.confirm(deps.sync, TENANT, Provider.QBO, actor="jane", wait_s=0.0)
    confirmation_id = result.confirmation.confirmation_id
    run = confirm._RUNS[confirmation_id]

    async def mid_way() -> bool:
        return (await _latest(deps)).placed >= 10

    await eventually(mid_way, within=60, every=0.01)
    run.cancel()  # the process stops: nothing in memory survives, the rows do
    with pytest.raises(asyncio.CancelledError):
        await run
    stopped = await _latest(deps)
    assert stopped.state == confirmations.RUNNING
    assert 0 < stopped.placed < len(overdue)
    assert stopped.remaining == len(overdue) - stopped.placed
    await control(
        "POST",
        control.company("/payments"),
        {
            "customer_id": paid.customer_id,
            "amount": f"{paid.balance // 100}.{paid.balance % 100:02d}",
            "lines": [
                {"invoice_id": paid.id, "amount": f"{paid.balance // 100}.{paid.balance % 100:02d}"}
            ],
        },
    )
    await control("DELETE", "/faults")

    # The workers find it in the database and finish it.
    stop = asyncio.Event()
    worker = asyncio.create_task(
        confirm.confirmation_worker(deps.syncs or {"qbo": deps.sync}, stop)
    )
    try:
        done = await _until_confirmed(deps)
    finally:
        stop.set()
        await worker
    assert done.state == confirmations.DONE
    assert (done.placed, done.dropped) == (len(overdue) - 1, 1)
    placed = await placements(deps)  # refuses two placements of one invoice
    assert set(placed) == set(overdue) - {paid.id}
    assert paid.id not in placed  # paid meanwhile: dropped, never dunned
    assert set((await _placed_by_audit(deps)).values()) == {1}
