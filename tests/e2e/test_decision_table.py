"""Every row of DESIGN.md's matching table through the real pipeline: a bookkeeper action
in the emulator, Intuit's signed webhook, the gateway, the inbox, the read from QBO, the
matcher, and the outreach event an outreach service would receive."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import integration_service_pb2 as ipb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from aicollect.type.v1 import money_pb2
from tests.conftest import INTERNAL_TOKEN, Emulator
from tests.e2e.pipeline import TENANT, Pipeline, debtor, running_pipeline
from tests.helpers.report_day import noon_report_day

S = mpb
STOP, PAUSE, RESUME, CHANGED = (
    S.OUTREACH_EVENT_TYPE_STOP,
    S.OUTREACH_EVENT_TYPE_PAUSE,
    S.OUTREACH_EVENT_TYPE_RESUME,
    S.OUTREACH_EVENT_TYPE_BALANCE_CHANGED,
)


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    async with running_pipeline(engine, emulator) as p:
        yield p


async def pay(p: Pipeline, customer_id: str, amount: str, invoice_id: str | None) -> str:
    body: dict[str, object] = {"customer_id": customer_id, "amount": amount}
    if invoice_id is not None:
        body["lines"] = [{"invoice_id": invoice_id, "amount": amount}]
    payment = await p.control("POST", "payments", body)
    return str(payment["Payment"]["Id"])


async def test_full_payment_resolves_out_of_band_and_stops_outreach(pipeline: Pipeline) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    started = time.monotonic()
    await pay(p, customer_id, "500.00", invoice_id)
    resolved = await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    assert resolved.resolution_reason == "paid out-of-band"
    await p.until(lambda: _has(p, placement.placement_id, STOP), what="a stop event")
    assert time.monotonic() - started < 10  # seconds, where the product page promises minutes


async def _has(p: Pipeline, placement_id: str, kind: int) -> bool:
    return kind in p.events_for(placement_id)


async def _inbox_empty(p: Pipeline) -> bool:
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        status = await igrpc.IntegrationServiceStub(channel).GetConnectionStatus(
            ipb.GetConnectionStatusRequest(tenant_id=TENANT)
        )
    return status.sync.inbox_backlog_count == 0


async def _stream_caught_up(p: Pipeline, placement_id: str) -> None:
    """Until the outreach stream has delivered everything committed so far: a pause of the
    placement is committed now, and the stream is in commit order, so once its PAUSE
    event has arrived, every earlier event has too."""
    await p.matching.PauseOutreach(
        mpb.PauseOutreachRequest(
            tenant_id=TENANT,
            target=mpb.OutreachTarget(placement_id=placement_id),
            actor="test",
            reason="a marker on the stream",
        )
    )
    await p.until(lambda: _has(p, placement_id, PAUSE), what="the marker on the stream")


async def test_partial_payment_reduces_the_balance_and_outreach_continues(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    await pay(p, customer_id, "200.00", invoice_id)

    async def reduced() -> bool:
        current = await p.placement(invoice_id)
        return current is not None and current.balance.minor_units == 30000

    await p.until(reduced, what="balance 300.00")
    current = await p.placement(invoice_id)
    assert current is not None
    assert current.status == S.PLACEMENT_STATUS_ACTIVE
    await p.until(lambda: _has(p, placement.placement_id, CHANGED), what="balance changed")
    assert STOP not in p.events_for(placement.placement_id)


async def test_qbo_record_of_our_portal_payment_is_not_counted_twice(pipeline: Pipeline) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    now = Timestamp()
    now.GetCurrentTime()
    await p.matching.RecordPortalPayment(
        mpb.RecordPortalPaymentRequest(
            placement_id=placement.placement_id,
            portal_payment_id="portal-1",
            amount=money_pb2.Money(currency_code="USD", minor_units=50000),
            pay_time=now,
        )
    )
    await pay(p, customer_id, "500.00", invoice_id)  # the bookkeeper records our remittance
    await p.webhooks_drained()
    current = await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_RESOLVED_PAID_PORTAL)
    assert current.resolution_reason != "paid out-of-band"
    assert current.balance.minor_units == 0


async def test_qbo_payment_hours_after_a_portal_payment_is_flagged_and_reported(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    paid_at = Timestamp()
    paid_at.FromDatetime(datetime.now(UTC) - timedelta(hours=3))  # outside the mirror window
    await p.matching.RecordPortalPayment(
        mpb.RecordPortalPaymentRequest(
            placement_id=placement.placement_id,
            portal_payment_id="portal-early",
            amount=money_pb2.Money(currency_code="USD", minor_units=50000),
            pay_time=paid_at,
        )
    )
    await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_RESOLVED_PAID_PORTAL)
    # Hours later the bookkeeper records the same payment in QBO.
    payment_id = await pay(p, customer_id, "500.00", invoice_id)
    await p.webhooks_drained()

    async def flagged() -> bool:
        current = await p.placement(invoice_id)
        return current is not None and current.review_flag == S.REVIEW_FLAG_POSSIBLE_DOUBLE_PAYMENT

    await p.until(flagged, what="a possible double payment flag")
    current = await p.placement(invoice_id)
    assert current is not None
    assert current.status == S.PLACEMENT_STATUS_RESOLVED_PAID_PORTAL  # still stopped
    assert f"QBO payment {payment_id} of 500.00 USD" in current.review_flag_reason
    await p.until(lambda: _has(p, placement.placement_id, STOP), what="a stop event")
    assert p.events_for(placement.placement_id) == [STOP]  # nothing paused or resumed
    zone, day = noon_report_day()  # one report, even around midnight UTC
    report = await p.matching.GetReconciliationReport(
        mpb.GetReconciliationReportRequest(
            tenant_id=TENANT,
            time_zone=zone,
            day=day,
            fee_terms=mpb.FeeTerms(
                contingency_fee_basis_points=2_500,
                out_of_band_fee_treatment=S.OUT_OF_BAND_FEE_TREATMENT_FULL,
            ),
        )
    )
    (usd,) = report.currencies
    (entry,) = usd.possible_double_payments
    assert (entry.placement_id, entry.payment_id) == (placement.placement_id, payment_id)
    assert (entry.amount_minor_units, entry.excess_minor_units) == (50000, 50000)
    assert list(usd.out_of_band_resolutions) == []


async def test_duplicated_webhooks_change_nothing(pipeline: Pipeline) -> None:
    p = pipeline
    async with aiohttp.ClientSession() as http:
        await http.post(f"{p.emulator.url}/_emulator/faults", json={"webhook_duplicate_rate": 1.0})
    customer_id, invoice_id, placement = await debtor(p)
    await pay(p, customer_id, "200.00", invoice_id)
    await p.webhooks_drained()

    async def reduced() -> bool:
        current = await p.placement(invoice_id)
        return current is not None and current.balance.minor_units == 30000

    await p.until(reduced, what="balance 300.00")
    # The outreach stream follows the commit: wait for the change there too, then until
    # every delivered event (each twice) was processed, so a second change would be seen.
    await p.until(lambda: _has(p, placement.placement_id, CHANGED), what="a balance change event")
    await p.webhooks_drained()
    await p.until(lambda: _inbox_empty(p), what="the inbox processed")
    await _stream_caught_up(p, placement.placement_id)
    current = await p.placement(invoice_id)
    assert current is not None
    assert current.balance.minor_units == 30000  # not 100.00: the payment counted once
    assert p.events_for(placement.placement_id).count(CHANGED) == 1


async def test_edited_payment_applies_only_the_difference(pipeline: Pipeline) -> None:
    p = pipeline
    customer_id, invoice_id, _ = await debtor(p)
    payment_id = await pay(p, customer_id, "200.00", invoice_id)

    async def balance_is(minor: int) -> bool:
        current = await p.placement(invoice_id)
        return current is not None and current.balance.minor_units == minor

    await p.until(lambda: balance_is(30000), what="balance 300.00")
    await p.control(
        "PATCH",
        f"payments/{payment_id}",
        {"amount": "350.00", "lines": [{"invoice_id": invoice_id, "amount": "350.00"}]},
    )
    await p.until(lambda: balance_is(15000), what="balance 150.00 after the edit")


async def test_void_after_resolution_flags_for_review_and_never_resumes(pipeline: Pipeline) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    payment_id = await pay(p, customer_id, "500.00", invoice_id)
    await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    await p.control("POST", f"payments/{payment_id}/void")
    flagged = await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_NEEDS_REVIEW)
    assert flagged.review_reason
    await p.until(lambda: _has(p, placement.placement_id, PAUSE), what="a pause event")
    assert RESUME not in p.events_for(placement.placement_id)


async def test_deleted_payment_after_resolution_flags_for_review(pipeline: Pipeline) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    payment_id = await pay(p, customer_id, "500.00", invoice_id)
    await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    await p.control("DELETE", f"payments/{payment_id}")
    await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_NEEDS_REVIEW)
    assert RESUME not in p.events_for(placement.placement_id)


async def test_unapplied_payment_of_about_the_amount_pauses_for_review(pipeline: Pipeline) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    await pay(p, customer_id, "500.00", None)  # wholly unapplied
    paused = await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW)
    assert paused.balance.minor_units == 50000  # never resolved blindly
    await p.until(lambda: _has(p, placement.placement_id, PAUSE), what="a pause event")


async def test_credit_memo_clearing_the_balance_closes_with_the_reason(pipeline: Pipeline) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    memo = await p.control("POST", "credit-memos", {"customer_id": customer_id, "amount": "500.00"})
    memo_id = str(memo["CreditMemo"]["Id"])
    await p.control(
        "POST", f"credit-memos/{memo_id}/apply", {"invoice_id": invoice_id, "amount": "500.00"}
    )
    closed = await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_CLOSED)
    assert "credit memo" in closed.resolution_reason.lower()
    await p.until(lambda: _has(p, placement.placement_id, STOP), what="a stop event")


async def test_voided_invoice_pauses_for_review(pipeline: Pipeline) -> None:
    p = pipeline
    _, invoice_id, placement = await debtor(p)
    await p.control("POST", f"invoices/{invoice_id}/void")
    await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW)
    await p.until(lambda: _has(p, placement.placement_id, PAUSE), what="a pause event")


async def test_restore_survives_a_later_cdc_poll(pipeline: Pipeline) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    await pay(p, customer_id, "500.00", invoice_id)
    resolved = await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    restored = (
        await p.matching.RestorePlacement(
            mpb.RestorePlacementRequest(
                placement_id=placement.placement_id,
                expected_version=resolved.version,
                actor="support@ai-collect",
                reason="bookkeeper applied the payment to the wrong customer",
            )
        )
    ).placement
    assert restored.status == S.PLACEMENT_STATUS_ACTIVE
    assert restored.balance.minor_units == 50000
    await p.until(lambda: _has(p, placement.placement_id, RESUME), what="a resume event")
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        reply = await igrpc.IntegrationServiceStub(channel).SyncNow(
            ipb.SyncNowRequest(tenant_id=TENANT, mode=ipb.SYNC_MODE_INCREMENTAL, actor="test")
        )
    assert reply.started

    async def polled() -> bool:
        async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
            status = await igrpc.IntegrationServiceStub(channel).GetConnectionStatus(
                ipb.GetConnectionStatusRequest(tenant_id=TENANT)
            )
        return status.sync.HasField("last_cdc_poll_time")

    await p.until(polled, what="a CDC poll")
    current = await p.placement(invoice_id)
    assert current is not None
    assert current.status == S.PLACEMENT_STATUS_ACTIVE  # the poll replayed it; nothing undone
    assert p.events_for(placement.placement_id).count(STOP) == 1


async def test_disconnect_keeps_placements_and_outreach_and_stops_syncing(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    customer_id, invoice_id, placement = await debtor(p)
    reply = await p.stack.deps.connections.disconnect(TENANT, "jane@acme", "switching tools")
    assert reply.state == "disconnected"
    # Placements and outreach continue (the product page's promise)...
    current = await p.placement(invoice_id)
    assert current is not None
    assert current.status == S.PLACEMENT_STATUS_ACTIVE
    assert STOP not in p.events_for(placement.placement_id)
    # ...and nothing more is synced: a payment recorded now changes nothing here.
    await pay(p, customer_id, "500.00", invoice_id)
    await p.webhooks_drained()
    current = await p.placement(invoice_id)
    assert current is not None
    assert current.status == S.PLACEMENT_STATUS_ACTIVE
    assert current.balance.minor_units == 50000


async def test_decisions_and_webhook_latency_are_measured(pipeline: Pipeline) -> None:
    from prometheus_client import generate_latest

    p = pipeline
    customer_id, invoice_id, _ = await debtor(p)
    await pay(p, customer_id, "500.00", invoice_id)
    await p.status_becomes(invoice_id, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    text = generate_latest(p.stack.deps.metrics.registry).decode()
    assert 'aicollect_match_outcomes_total{outcome="DECISION_OUTCOME_RESOLVED_OUT_OF_BAND"}' in text
    assert "aicollect_webhook_to_decision_seconds_count" in text
    assert 'aicollect_intuit_requests_total{endpoint="query",status="200"}' in text
