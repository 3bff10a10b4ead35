"""QBO's times have one-second resolution: a payment recorded in the same second the
invoice was read for intake must still count (found by the end-to-end pipeline tests).
Whether a payment is already inside the placed balance is what the intake's invoice
version links (QBO ``LinkedTxn``), never a comparison of times."""

from __future__ import annotations

from datetime import UTC, datetime

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import (
    Matcher,
    outcomes,
    placement_input,
    qbo_invoice,
    qbo_payment,
)


async def test_payment_in_the_intake_second_resolves_the_placement(matcher: Matcher) -> None:
    second = datetime.now(UTC).replace(microsecond=0)
    (placement,) = await matcher.place(placement_input("10", 50_000, updated=second))
    paid = await matcher.stub.ApplyAccountingPayment(
        pb.ApplyAccountingPaymentRequest(
            tenant_id=placement.tenant_id,
            provider=placement.provider,
            company_id=placement.company_id,
            payment=qbo_payment("11", [("10", 50_000)], created=second, updated=second),
            source=pb.CHANGE_SOURCE_WEBHOOK,
        )
    )
    assert outcomes(paid.decisions) == ["RESOLVED_OUT_OF_BAND"]
    invoice = await matcher.stub.ApplyAccountingInvoice(
        pb.ApplyAccountingInvoiceRequest(
            tenant_id=placement.tenant_id,
            provider=placement.provider,
            company_id=placement.company_id,
            invoice=qbo_invoice(
                "10", 0, total=50_000, linked=[("11", pb.LINKED_TXN_TYPE_PAYMENT)], updated=second
            ),
            source=pb.CHANGE_SOURCE_WEBHOOK,
        )
    )
    assert outcomes(invoice.decisions) == ["DUPLICATE_NO_CHANGE"]


async def test_payment_already_in_the_intake_balance_is_not_counted_twice(
    matcher: Matcher,
) -> None:
    second = datetime.now(UTC).replace(microsecond=0)
    # Read for intake after the payment: total 500.00, balance 300.00, same second.
    (placement,) = await matcher.place(
        placement_input("10", 30_000, total=50_000, updated=second, linked_payments=["11"])
    )
    paid = await matcher.stub.ApplyAccountingPayment(
        pb.ApplyAccountingPaymentRequest(
            tenant_id=placement.tenant_id,
            provider=placement.provider,
            company_id=placement.company_id,
            payment=qbo_payment("11", [("10", 20_000)], created=second, updated=second),
            source=pb.CHANGE_SOURCE_WEBHOOK,
        )
    )
    assert outcomes(paid.decisions) == ["DUPLICATE_NO_CHANGE"]
    current = await matcher.stub.GetPlacement(
        pb.GetPlacementRequest(placement_id=placement.placement_id)
    )
    assert current.placement.balance.minor_units == 30_000


async def test_two_payments_in_the_intake_second_both_count(matcher: Matcher) -> None:
    """Half, then the rest, both in the second the invoice was read: the second payment is
    not mistaken for one already inside the placed balance (issue 10, item 12)."""
    second = datetime.now(UTC).replace(microsecond=0)
    (placement,) = await matcher.place(placement_input("10", 40_000, updated=second))
    for payment_id in ("11", "12"):
        await matcher.stub.ApplyAccountingPayment(
            pb.ApplyAccountingPaymentRequest(
                tenant_id=placement.tenant_id,
                provider=placement.provider,
                company_id=placement.company_id,
                payment=qbo_payment(payment_id, [("10", 20_000)], created=second, updated=second),
                source=pb.CHANGE_SOURCE_WEBHOOK,
            )
        )
    invoice = await matcher.stub.ApplyAccountingInvoice(
        pb.ApplyAccountingInvoiceRequest(
            tenant_id=placement.tenant_id,
            provider=placement.provider,
            company_id=placement.company_id,
            invoice=qbo_invoice(
                "10",
                0,
                total=40_000,
                linked=[("11", pb.LINKED_TXN_TYPE_PAYMENT), ("12", pb.LINKED_TXN_TYPE_PAYMENT)],
                updated=second,
            ),
            source=pb.CHANGE_SOURCE_WEBHOOK,
        )
    )
    assert outcomes(invoice.decisions) == ["DUPLICATE_NO_CHANGE"]
    current = (
        await matcher.stub.GetPlacement(pb.GetPlacementRequest(placement_id=placement.placement_id))
    ).placement
    assert (current.status, current.balance.minor_units) == (
        pb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND,
        0,
    )
    assert current.resolving_payment_id == "12"
    audited = [
        e.action
        for e in await matcher.audit(placement.placement_id)
        if e.details.get("payment_id") == "12"
    ]
    assert audited == ["placement.resolved_out_of_band"]
