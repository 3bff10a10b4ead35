"""An invoice cleared partly by money paid out of band and partly by a credit memo ends
the same way whatever order the matcher reads things in: paid out of band, for the money
paid (docs/matching.md). Only a balance cleared without any money closes."""

from __future__ import annotations

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.helpers.report_day import noon_report_day
from tests.services.matcher.conftest import (
    Matcher,
    placement_input,
    qbo_invoice,
    qbo_payment,
    status_name,
)

PAYMENT = pb.LINKED_TXN_TYPE_PAYMENT
CREDIT_MEMO = pb.LINKED_TXN_TYPE_CREDIT_MEMO
MONEY = qbo_payment("401", [("70", 12_500)])
CREDIT = qbo_payment("402", [("70", 12_500)], credit_memos=[("52", 12_500)], total=0)
CLEARED = qbo_invoice(
    "70", 0, total=25_000, linked=[("401", PAYMENT), ("402", PAYMENT), ("52", CREDIT_MEMO)]
)


async def _resolution(matcher: Matcher, placement_id: str) -> tuple[str, int, str, str]:
    after = await matcher.get(placement_id)
    return (
        status_name(after),
        after.balance.minor_units,
        after.resolution_reason,
        after.resolving_payment_id,
    )


async def test_money_then_credit_is_paid_out_of_band(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 25_000, total=25_000))
    await matcher.pay(MONEY)
    await matcher.pay(CREDIT)
    await matcher.invoice(CLEARED)
    assert await _resolution(matcher, placement.placement_id) == (
        "RESOLVED_OUT_OF_BAND",
        0,
        "paid out-of-band",
        "401",
    )


async def test_credit_then_money_is_paid_out_of_band(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 25_000, total=25_000))
    await matcher.pay(CREDIT)
    await matcher.pay(MONEY)
    await matcher.invoice(CLEARED)
    assert await _resolution(matcher, placement.placement_id) == (
        "RESOLVED_OUT_OF_BAND",
        0,
        "paid out-of-band",
        "401",
    )


async def test_money_then_invoice_then_credit_payment_is_paid_out_of_band(
    matcher: Matcher,
) -> None:
    """The invoice shows the credit's payment before it is read (taken for money at first);
    once read, the resolution stands for the money actually paid."""
    (placement,) = await matcher.place(placement_input("70", 25_000, total=25_000))
    await matcher.pay(MONEY)
    await matcher.invoice(CLEARED)
    await matcher.pay(CREDIT)
    assert await _resolution(matcher, placement.placement_id) == (
        "RESOLVED_OUT_OF_BAND",
        0,
        "paid out-of-band",
        "401",
    )
    actions = [e.action for e in await matcher.audit(placement.placement_id)]
    assert actions[-1] == "placement.resolution_corrected"
    # The out-of-band fee is on the 125.00 paid, not on the 250.00 first attributed.
    zone, day = noon_report_day()  # one report, even around midnight UTC
    report = await matcher.stub.GetReconciliationReport(
        pb.GetReconciliationReportRequest(
            tenant_id="acme",
            time_zone=zone,
            day=day,
            fee_terms=pb.FeeTerms(
                contingency_fee_basis_points=2_000,
                out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_FULL,
            ),
        )
    )
    (usd,) = report.currencies
    assert [
        (r.payment_id, r.amount_minor_units, r.fee_minor_units) for r in usd.out_of_band_resolutions
    ] == [("401", 12_500, 2_500)]
    assert [kind for kind, _, _ in await matcher.outbox()] == ["balance_changed", "stop"]


async def test_money_then_invoice_showing_only_the_credit_memo_is_paid_out_of_band(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 25_000, total=25_000))
    await matcher.pay(MONEY)
    await matcher.invoice(
        qbo_invoice("70", 0, total=25_000, linked=[("401", PAYMENT), ("52", CREDIT_MEMO)])
    )
    assert await _resolution(matcher, placement.placement_id) == (
        "RESOLVED_OUT_OF_BAND",
        0,
        "paid out-of-band",
        "401",
    )


async def test_credit_alone_still_closes(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 12_500, total=12_500))
    await matcher.pay(qbo_payment("402", [("70", 12_500)], credit_memos=[("52", 12_500)], total=0))
    status, balance, reason, payer = await _resolution(matcher, placement.placement_id)
    assert (status, balance, payer) == ("CLOSED", 0, "")
    assert "credit memo 52" in reason
