"""Pausing outreach and restoring a wrong closure through the real pipeline: the bookkeeper
acts in the emulator, Intuit's signed webhook reaches the gateway, the inbox, the matcher,
and the outreach stream an outreach service would read."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.matching.v1 import matching_service_pb2 as mpb
from tests.conftest import Emulator
from tests.e2e.pipeline import TENANT, Pipeline, debtor, running_pipeline

STOP, PAUSE, RESUME = (
    mpb.OUTREACH_EVENT_TYPE_STOP,
    mpb.OUTREACH_EVENT_TYPE_PAUSE,
    mpb.OUTREACH_EVENT_TYPE_RESUME,
)


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    async with running_pipeline(engine, emulator) as p:
        yield p


async def test_a_payment_during_a_pause_resolves_and_outreach_never_resumes(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    paused = await p.matching.PauseOutreach(
        mpb.PauseOutreachRequest(
            tenant_id=TENANT,
            target=mpb.OutreachTarget(all_placements=True),
            actor="jane@acme",
            reason="disconnect and stop all outreach",
        )
    )
    assert paused.placements_paused >= 1  # with the company's other placements
    await p.until(lambda: _has(p, placement.placement_id, PAUSE), what="a pause event")

    body = {
        "customer_id": customer_id,
        "amount": "500.00",
        "lines": [{"invoice_id": invoice_id, "amount": "500.00"}],
    }
    await p.control("POST", "payments", body)
    resolved = await p.status_becomes(invoice_id, mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    assert resolved.resolution_reason == "paid out-of-band"
    await p.until(lambda: _has(p, placement.placement_id, STOP), what="a stop event")

    resumed = await p.matching.ResumeOutreach(
        mpb.ResumeOutreachRequest(
            tenant_id=TENANT,
            target=mpb.OutreachTarget(all_placements=True),
            actor="jane@acme",
            reason="reconnected",
        )
    )
    # The others resume; a paid debtor is never dunned again.
    assert resumed.placements_resumed == paused.placements_paused - 1
    assert p.events_for(placement.placement_id) == [PAUSE, STOP]


async def test_a_wrong_credit_memo_restored_then_deleted_leaves_the_right_balance(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    memo = await p.control("POST", "credit-memos", {"customer_id": customer_id, "amount": "500.00"})
    memo_id = str(memo["CreditMemo"]["Id"])
    applied = await p.control(
        "POST", f"credit-memos/{memo_id}/apply", {"invoice_id": invoice_id, "amount": "500.00"}
    )
    closed = await p.status_becomes(invoice_id, mpb.PLACEMENT_STATUS_CLOSED)
    await p.webhooks_drained()
    closed = await p.status_becomes(invoice_id, mpb.PLACEMENT_STATUS_CLOSED)

    # Support restores it: the creditor confirms the credit memo was a mistake.
    restored = (
        await p.matching.RestorePlacement(
            mpb.RestorePlacementRequest(
                placement_id=placement.placement_id,
                expected_version=closed.version,
                actor="dana@support",
                reason="ticket 812: credit memo applied to the wrong invoice",
            )
        )
    ).placement
    assert (restored.status, restored.balance.minor_units) == (mpb.PLACEMENT_STATUS_ACTIVE, 50000)
    await p.until(lambda: _has(p, placement.placement_id, RESUME), what="a resume event")

    # Then the bookkeeper removes the credit: its application, then the memo itself.
    await p.control("DELETE", f"payments/{applied['Payment']['Id']}")
    await p.control("DELETE", f"credit-memos/{memo_id}")
    await p.webhooks_drained()
    current = await p.placement(invoice_id)
    assert current is not None
    assert (current.status, current.balance.minor_units) == (mpb.PLACEMENT_STATUS_ACTIVE, 50000)
    assert p.events_for(placement.placement_id).count(STOP) == 1


async def _has(p: Pipeline, placement_id: str, kind: int) -> bool:
    return kind in p.events_for(placement_id)
