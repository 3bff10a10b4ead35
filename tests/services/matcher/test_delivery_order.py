"""Whatever the order and duplication of deliveries, the final versions of the payments and
the invoice leave the placement in one state: QBO's balance, resolved exactly when paid."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count, permutations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.helpers.report_day import noon_report_day
from tests.services.matcher.conftest import (
    Matcher,
    placement_input,
    qbo_invoice,
    qbo_payment,
    status_name,
)

TOTAL = 10_000
_invoice_ids = count(1000)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[int], bool, list[int]]:
    """Payment amounts, whether they pay the invoice in full, and a delivery order of
    message indexes (payments 0..n-1, the invoice n) with duplicates."""
    amounts = draw(st.lists(st.integers(min_value=100, max_value=3_000), min_size=1, max_size=3))
    full = draw(st.booleans())
    if full:
        amounts[-1] = TOTAL - sum(amounts[:-1])
    messages = list(range(len(amounts) + 1))
    order = draw(st.permutations(messages))
    duplicates = draw(st.lists(st.sampled_from(messages), max_size=3))
    return amounts, full, [*order, *duplicates]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=deliveries())
async def test_final_state_does_not_depend_on_delivery_order(
    matcher: Matcher, case: tuple[list[int], bool, list[int]]
) -> None:
    amounts, full, order = case
    invoice_id = str(next(_invoice_ids))
    (placement,) = await matcher.place(placement_input(invoice_id, TOTAL))
    paid_at = datetime.now(UTC) - timedelta(minutes=5)
    payments = [
        qbo_payment(f"{invoice_id}-{i}", [(invoice_id, a)], created=paid_at, updated=paid_at)
        for i, a in enumerate(amounts)
    ]
    invoice = qbo_invoice(
        invoice_id,
        TOTAL - sum(amounts),
        total=TOTAL,
        linked=[(p.payment_id, pb.LINKED_TXN_TYPE_PAYMENT) for p in payments],
        updated=datetime.now(UTC),
    )
    for index in order:
        if index < len(payments):
            await matcher.pay(payments[index], pb.CHANGE_SOURCE_CDC)
        else:
            await matcher.invoice(invoice, pb.CHANGE_SOURCE_CDC)

    after = await matcher.get(placement.placement_id)
    assert after.balance.minor_units == TOTAL - sum(amounts)
    assert status_name(after) == ("RESOLVED_OUT_OF_BAND" if full else "ACTIVE")
    events = await matcher.outbox(placement.placement_id)
    assert [kind for kind, _, _ in events].count("stop") == (1 if full else 0)
    assert "resume" not in {kind for kind, _, _ in events}


async def test_portal_payment_and_its_qbo_record_in_any_order(matcher: Matcher) -> None:
    """The debtor pays through the portal; the bookkeeper records the same money in QBO.
    Nothing is counted twice and nothing is out-of-band, whichever message comes first."""
    paid_at = datetime.now(UTC) - timedelta(minutes=30)
    recorded_at = paid_at + timedelta(minutes=10)
    orders = list(permutations(["portal", "qbo", "invoice"]))
    for case, (amount, order) in enumerate((a, o) for a in (4_000, TOTAL) for o in orders):
        invoice_id = f"7{case:02d}"
        (placement,) = await matcher.place(placement_input(invoice_id, TOTAL))
        for step in order:
            if step == "portal":
                await matcher.portal(placement.placement_id, f"pp-{case}", amount, when=paid_at)
            elif step == "qbo":
                await matcher.pay(
                    qbo_payment(
                        f"5{case:02d}",
                        [(invoice_id, amount)],
                        created=recorded_at,
                        updated=recorded_at,
                    )
                )
            else:
                await matcher.invoice(
                    qbo_invoice(
                        invoice_id,
                        TOTAL - amount,
                        linked=[(f"5{case:02d}", pb.LINKED_TXN_TYPE_PAYMENT)],
                        updated=recorded_at,
                    )
                )
        after = await matcher.get(placement.placement_id)
        label = f"{amount} {order}"
        assert after.balance.minor_units == TOTAL - amount, label
        expected = "RESOLVED_PAID_PORTAL" if amount == TOTAL else "ACTIVE"
        assert status_name(after) == expected, label
        assert after.resolving_payment_id == "", label
        kinds = [kind for kind, _, _ in await matcher.outbox(placement.placement_id)]
        assert "pause" not in kinds, label
        assert "resume" not in kinds, label
        assert kinds.count("stop") == (1 if amount == TOTAL else 0), label
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
    assert list(usd.out_of_band_resolutions) == []  # none of it was out of band
    assert usd.totals.portal_payment_count == 12
