"""The matching table's rows through the Xero path: a bookkeeper action in the Xero
emulator, Xero's signed webhook (or, where Xero sends none, the poll), the gateway, the
inbox, the re-read from Xero, the matcher's decision."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC

import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import integration_service_pb2 as ipb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from aicollect.type.v1 import money_pb2
from tests.conftest import INTERNAL_TOKEN, Emulator
from tests.services.integration.providers.xero.conftest import Xero
from tests.services.integration.providers.xero.pipeline import (
    TENANT,
    XeroPipeline,
    running_pipeline,
)

# What is matched is the subject here, not Xero's pacing: 600 requests a minute, not 60,
# so a safety-net poll is not spread over several seconds (the pacing has its own tests).
pytestmark = pytest.mark.xero_minute_limit(600)

S = mpb
PAST_DUE = "2026-06-30"


@pytest_asyncio.fixture
async def pipeline(
    engine: AsyncEngine, emulator: Emulator, xero: Xero
) -> AsyncIterator[XeroPipeline]:
    async with running_pipeline(engine, emulator, xero, AICOLLECT_CDC_INTERVAL_SECONDS="2") as p:
        yield p


async def debtor(p: XeroPipeline, amount: str = "500.00") -> tuple[str, str, mpb.Placement]:
    """A contact with one overdue invoice that became a placement (through its webhook)."""
    contact = await p.contact(f"Debtor {time.monotonic_ns()}", "ap@debtor.test")
    invoice = await p.invoice(contact, amount, PAST_DUE, date="2026-05-31")

    async def placed() -> bool:
        return await p.placement(invoice) is not None

    await p.until(placed, what=f"a placement for {invoice}")
    found = await p.placement(invoice)
    assert found is not None
    assert found.status == S.PLACEMENT_STATUS_ACTIVE
    assert found.debtor.email == "ap@debtor.test"
    return contact, invoice, found


async def credit(p: XeroPipeline, kind: str, contact: str, invoice: str, amount: str) -> None:
    """A credit note, overpayment or prepayment of the contact, allocated to the invoice."""
    key = {"credit-notes": "CreditNotes", "overpayments": "Overpayments"}.get(kind, "Prepayments")
    made = await p.books("POST", kind, {"contact_id": contact, "amount": amount})
    assert key in made, made
    credit_id = made[key][0][f"{key[:-1]}ID"]
    done = await p.books("POST", f"{kind}/{credit_id}/allocations", {"invoice_id": invoice})
    assert "Allocations" in done, done


async def test_full_payment_resolves_out_of_band(pipeline: XeroPipeline) -> None:
    p = pipeline
    _, invoice, _ = await debtor(p)
    started = time.monotonic()
    await p.pay(invoice)  # Xero: PAID, AmountDue 0
    resolved = await p.status_becomes(invoice, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    assert resolved.resolution_reason == "paid out-of-band"
    assert resolved.balance.minor_units == 0
    assert time.monotonic() - started < 15


async def test_part_payment_lowers_the_balance_and_outreach_continues(
    pipeline: XeroPipeline,
) -> None:
    p = pipeline
    _, invoice, _ = await debtor(p)
    await p.pay(invoice, "200.00")  # Xero: AUTHORISED with AmountDue 300.00

    async def reduced() -> bool:
        found = await p.placement(invoice)
        return found is not None and found.balance.minor_units == 30000

    await p.until(reduced, what="balance 300.00")
    found = await p.placement(invoice)
    assert found is not None
    assert found.status == S.PLACEMENT_STATUS_ACTIVE


async def test_deleted_payment_after_resolution_is_held_for_review(pipeline: XeroPipeline) -> None:
    p = pipeline
    _, invoice, _ = await debtor(p)
    payment = await p.pay(invoice)
    await p.status_becomes(invoice, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    await p.books("DELETE", f"payments/{payment}")  # Xero: Status DELETED, invoice AUTHORISED
    flagged = await p.status_becomes(invoice, S.PLACEMENT_STATUS_NEEDS_REVIEW)
    assert flagged.review_reason


async def test_credit_note_clearing_the_balance_closes_the_placement(
    pipeline: XeroPipeline,
) -> None:
    p = pipeline
    contact, invoice, _ = await debtor(p)
    await credit(p, "credit-notes", contact, invoice, "500.00")
    closed = await p.status_becomes(invoice, S.PLACEMENT_STATUS_CLOSED)
    assert "credit" in closed.resolution_reason.lower()


async def test_overpayment_and_prepayment_allocations_end_the_debt(
    pipeline: XeroPipeline,
) -> None:
    p = pipeline
    contact, over, _ = await debtor(p)
    _, pre, _ = await debtor(p)
    await credit(p, "overpayments", contact, over, "500.00")
    pre_contact = (await p.books("GET", f"invoices/{pre}"))["Invoices"][0]["Contact"]["ContactID"]
    await credit(p, "prepayments", pre_contact, pre, "500.00")
    for invoice in (over, pre):

        async def ended(invoice: str = invoice) -> bool:
            found = await p.placement(invoice)
            return found is not None and found.status != S.PLACEMENT_STATUS_ACTIVE

        await p.until(ended, what=f"{invoice} no longer active")
        found = await p.placement(invoice)
        assert found is not None
        assert found.balance.minor_units == 0
        # Money the debtor paid (earlier, in excess or in advance): paid, not a credit.
        assert found.status == S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND, found
        assert found.resolution_reason == "paid out-of-band"


async def test_voided_invoice_pauses_for_review(pipeline: XeroPipeline) -> None:
    p = pipeline
    _, invoice, _ = await debtor(p)
    await p.books("POST", f"invoices/{invoice}/void")
    await p.status_becomes(invoice, S.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW)


async def test_xeros_record_of_our_portal_payment_is_not_counted_twice(
    pipeline: XeroPipeline,
) -> None:
    p = pipeline
    _, invoice, placement = await debtor(p)
    now = Timestamp()
    now.GetCurrentTime()
    await p.matching.RecordPortalPayment(
        mpb.RecordPortalPaymentRequest(
            placement_id=placement.placement_id,
            portal_payment_id="portal-1",
            amount=money_pb2.Money(
                currency_code=placement.balance.currency_code, minor_units=50000
            ),
            pay_time=now,
        )
    )
    await p.pay(invoice)  # the bookkeeper records our remittance in Xero
    await p.webhooks_drained()
    found = await p.status_becomes(invoice, S.PLACEMENT_STATUS_RESOLVED_PAID_PORTAL)
    assert found.resolution_reason != "paid out-of-band"
    assert found.balance.minor_units == 0


async def test_restore_survives_the_next_poll(pipeline: XeroPipeline) -> None:
    p = pipeline
    _, invoice, placement = await debtor(p)
    await p.pay(invoice)
    resolved = await p.status_becomes(invoice, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    restored = (
        await p.matching.RestorePlacement(
            mpb.RestorePlacementRequest(
                placement_id=placement.placement_id,
                expected_version=resolved.version,
                actor="support@ai-collect",
                reason="the bookkeeper applied the payment to the wrong invoice",
            )
        )
    ).placement
    assert restored.status == S.PLACEMENT_STATUS_ACTIVE
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        stub = igrpc.IntegrationServiceStub(channel)
        before = await stub.GetConnectionStatus(
            ipb.GetConnectionStatusRequest(tenant_id=TENANT, provider=ipb.PROVIDER_XERO)
        )
        reply = await stub.SyncNow(
            ipb.SyncNowRequest(
                tenant_id=TENANT,
                mode=ipb.SYNC_MODE_INCREMENTAL,
                actor="test",
                provider=ipb.PROVIDER_XERO,
            )
        )
        assert reply.started

        async def polled() -> bool:
            now = await stub.GetConnectionStatus(
                ipb.GetConnectionStatusRequest(tenant_id=TENANT, provider=ipb.PROVIDER_XERO)
            )
            return now.sync.HasField("last_cdc_poll_time") and (
                not before.sync.HasField("last_cdc_poll_time")
                or now.sync.last_cdc_poll_time.ToDatetime()
                > before.sync.last_cdc_poll_time.ToDatetime()
            )

        await p.until(polled, what="a poll after the restore")
    found = await p.placement(invoice)
    assert found is not None
    assert found.status == S.PLACEMENT_STATUS_ACTIVE  # the poll read the payment again; kept


# -- unallocated overpayments and prepayments (Xero's unapplied money) ---------------------


async def polls_after(p: XeroPipeline, count: int = 2) -> None:
    """Waits until ``count`` safety-net polls finished after now (the last of two started
    after this call: Xero sends no webhook for an overpayment or prepayment)."""
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        stub = igrpc.IntegrationServiceStub(channel)
        request = ipb.GetConnectionStatusRequest(tenant_id=TENANT, provider=ipb.PROVIDER_XERO)
        for _ in range(count):
            before = (await stub.GetConnectionStatus(request)).sync.last_cdc_poll_time

            async def polled(before: Timestamp = before) -> bool:
                now = (await stub.GetConnectionStatus(request)).sync.last_cdc_poll_time
                return now.ToNanoseconds() > before.ToNanoseconds()

            await p.until(polled, what="a safety-net poll")


async def unallocated(p: XeroPipeline, kind: str, contact: str, amount: str) -> str:
    """An overpayment or prepayment the bookkeeper records and allocates to nothing."""
    key = "Overpayments" if kind == "overpayments" else "Prepayments"
    made = await p.books("POST", kind, {"contact_id": contact, "amount": amount})
    assert key in made, made
    assert made[key][0]["RemainingCredit"] == float(amount)
    return str(made[key][0][f"{key[:-1]}ID"])


async def audit_actions(p: XeroPipeline, placement_id: str) -> list[str]:
    reply = await p.matching.ListAuditEvents(
        mpb.ListAuditEventsRequest(tenant_id=TENANT, placement_id=placement_id, page_size=1000)
    )
    return [event.action for event in reply.events]


@pytest.mark.parametrize("kind", ["overpayments", "prepayments"])
async def test_unallocated_money_pauses_for_review_and_its_allocation_resolves_once(
    pipeline: XeroPipeline, kind: str
) -> None:
    p = pipeline
    contact, invoice, placement = await debtor(p)
    credit_id = await unallocated(p, kind, contact, "500.00")
    # As QuickBooks' unapplied payment of the amount: paused, never resolved on it.
    paused = await p.status_becomes(invoice, S.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW)
    assert paused.balance.minor_units == 50000
    assert credit_id in paused.review_reason
    assert "unapplied" in paused.review_reason
    await p.books("POST", f"{kind}/{credit_id}/allocations", {"invoice_id": invoice})
    resolved = await p.status_becomes(invoice, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    assert resolved.resolution_reason == "paid out-of-band"
    assert resolved.balance.minor_units == 0
    await polls_after(p)  # the allocated credit read again: nothing more happens
    after = await p.placement(invoice)
    assert after is not None
    assert after.version == resolved.version
    actions = await audit_actions(p, placement.placement_id)
    assert actions.count("placement.resolved_out_of_band") == 1, actions
    # The money counted once: 500.00 out of band, no possible double payment.
    report = await p.matching.GetReconciliationReport(
        mpb.GetReconciliationReportRequest(
            tenant_id=TENANT,
            day=resolved.resolve_time.ToDatetime(tzinfo=UTC).date().isoformat(),
            fee_terms=mpb.FeeTerms(
                contingency_fee_basis_points=2_500,
                out_of_band_fee_treatment=mpb.OUT_OF_BAND_FEE_TREATMENT_REDUCED,
                out_of_band_fee_basis_points=1_000,
            ),
        )
    )
    ours = [
        (entry.payment_id, entry.amount_minor_units)
        for section in report.currencies
        for entry in section.out_of_band_resolutions
        if entry.placement_id == placement.placement_id
    ]
    assert ours == [(credit_id, 50000)]
    doubles = [
        entry
        for section in report.currencies
        for entry in section.possible_double_payments
        if entry.placement_id == placement.placement_id
    ]
    assert doubles == []


async def test_small_unallocated_overpayment_pauses_only_what_it_covers(
    pipeline: XeroPipeline,
) -> None:
    p = pipeline
    contact, large, _ = await debtor(p)  # 500.00 owed
    small = await p.invoice(contact, "40.00", PAST_DUE, date="2026-05-31")
    await p.until(lambda: _placed(p, small), what="the 40.00 placement")
    await unallocated(p, "overpayments", contact, "50.00")
    await p.status_becomes(small, S.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW)
    found = await p.placement(large)
    assert found is not None
    assert found.status == S.PLACEMENT_STATUS_ACTIVE
    assert found.balance.minor_units == 50000


async def test_voided_overpayment_no_longer_counts_as_unapplied(pipeline: XeroPipeline) -> None:
    p = pipeline
    contact, first, _ = await debtor(p)  # 500.00
    second = await p.invoice(contact, "800.00", PAST_DUE, date="2026-05-31")
    await p.until(lambda: _placed(p, second), what="the 800.00 placement")
    credit_id = await unallocated(p, "overpayments", contact, "500.00")
    await p.status_becomes(first, S.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW)
    await p.books("POST", f"overpayments/{credit_id}/void")
    await polls_after(p)
    # 400.00 left on the second invoice: 500.00 unapplied would cover it; voided, it does not.
    await p.pay(second, "400.00")

    async def reduced() -> bool:
        found = await p.placement(second)
        return found is not None and found.balance.minor_units == 40000

    await p.until(reduced, what="balance 400.00")
    await polls_after(p, 1)
    found = await p.placement(second)
    assert found is not None
    assert found.status == S.PLACEMENT_STATUS_ACTIVE, found
    still = await p.placement(first)  # a pause is never lifted automatically
    assert still is not None
    assert still.status == S.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW


async def _placed(p: XeroPipeline, invoice: str) -> bool:
    return await p.placement(invoice) is not None


async def test_a_xero_creditor_reads_xero_not_qbo_on_the_timeline(pipeline: XeroPipeline) -> None:
    """Review and resolution reasons and the audit trail name the creditor's own books."""
    p = pipeline
    _, paid, first = await debtor(p)
    payment = await p.pay(paid)
    await p.status_becomes(paid, S.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)
    await p.books("DELETE", f"payments/{payment}")
    flagged = await p.status_becomes(paid, S.PLACEMENT_STATUS_NEEDS_REVIEW)
    # Worded after the invoice or the payment, whichever the matcher read first.
    assert " in Xero" in flagged.review_reason, flagged.review_reason
    contact, owed, second = await debtor(p)
    credit_id = await unallocated(p, "overpayments", contact, "500.00")
    paused = await p.status_becomes(owed, S.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW)
    assert paused.review_reason.startswith(f"Xero payment {credit_id} "), paused.review_reason
    texts: list[str] = []
    reasons: dict[str, list[str]] = {}
    for invoice, placement in ((paid, first), (owed, second)):
        found = await p.placement(invoice)
        assert found is not None
        texts += [found.review_reason, found.resolution_reason]
        reply = await p.matching.ListAuditEvents(
            mpb.ListAuditEventsRequest(
                tenant_id=TENANT, placement_id=placement.placement_id, page_size=1000
            )
        )
        reasons[invoice] = [event.reason for event in reply.events]
        for event in reply.events:
            texts += [event.reason, *event.details.values()]
    # The resolution is said in the payment's name, read first or through the invoice.
    assert [r for r in reasons[paid] if f"Xero payment {payment}" in r], reasons[paid]
    assert [t for t in texts if "QBO" in t] == []
