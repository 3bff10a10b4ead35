"""GetReconciliationReport: a tenant's day, fees netted, per currency, in minor units."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import grpc
import pytest

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import Matcher, invalid_field, placement_input, qbo_payment

TERMS = pb.FeeTerms(
    contingency_fee_basis_points=2_500,
    out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_REDUCED,
    out_of_band_fee_basis_points=1_000,
)


async def _report(
    matcher: Matcher, day: str, terms: pb.FeeTerms = TERMS, zone: str = "", tenant: str = "acme"
) -> pb.GetReconciliationReportResponse:
    return await matcher.stub.GetReconciliationReport(
        pb.GetReconciliationReportRequest(
            tenant_id=tenant, day=day, time_zone=zone, fee_terms=terms
        )
    )


async def test_portal_fees_out_of_band_terms_and_totals(matcher: Matcher) -> None:
    today = datetime.now(UTC).date()
    midnight = datetime.combine(today, time(0), tzinfo=UTC)
    big, paid, partly, wrong, euro = await matcher.place(
        placement_input("70", 100_000),
        placement_input("71", 10_000),
        placement_input("72", 6_000),
        placement_input("73", 3_000),
        placement_input("74", 5_000, currency="EUR"),
    )
    await matcher.portal(big.placement_id, "pp-1", 4_000, when=midnight + timedelta(hours=9))
    await matcher.portal(big.placement_id, "pp-2", 2, when=midnight + timedelta(hours=10))
    await matcher.portal(
        big.placement_id, "pp-3", 5_000, fee=700, when=midnight + timedelta(hours=11)
    )
    await matcher.portal(big.placement_id, "pp-old", 999, when=midnight - timedelta(minutes=1))
    await matcher.portal(
        euro.placement_id, "pp-eur", 1_000, when=midnight + timedelta(hours=8), currency="EUR"
    )
    await matcher.pay(qbo_payment("B", [("71", 10_000)]))
    await matcher.pay(qbo_payment("C1", [("72", 1_000)]))
    await matcher.pay(qbo_payment("C2", [("72", 5_000)]))
    await matcher.pay(qbo_payment("D", [("73", 3_000)]))
    await matcher.restore(await matcher.get(wrong.placement_id))
    (other,) = await matcher.place(placement_input("70", 5_000), tenant="globex")
    await matcher.portal(other.placement_id, "pp-globex", 5_000, when=midnight + timedelta(hours=9))

    report = await _report(matcher, today.isoformat())

    assert (report.tenant_id, report.day, report.time_zone) == ("acme", today.isoformat(), "UTC")
    assert report.start_time.ToDatetime(tzinfo=UTC) == midnight
    assert report.end_time.ToDatetime(tzinfo=UTC) == midnight + timedelta(days=1)
    assert [c.currency_code for c in report.currencies] == ["EUR", "USD"]
    eur, usd = report.currencies
    assert [
        (p.portal_payment_id, p.fee_minor_units, p.net_minor_units) for p in eur.portal_payments
    ] == [("pp-eur", 250, 750)]
    assert [
        (p.portal_payment_id, p.amount_minor_units, p.fee_minor_units, p.net_minor_units)
        for p in usd.portal_payments
    ] == [
        ("pp-1", 4_000, 1_000, 3_000),
        ("pp-2", 2, 1, 1),  # 0.5 rounds half up
        ("pp-3", 5_000, 700, 4_300),  # the fee the portal recorded
    ]
    assert usd.portal_payments[0].invoice_id == "70"
    assert usd.portal_payments[0].doc_number == "1070"
    oob = [
        (
            e.placement_id,
            e.payment_id,
            e.amount_minor_units,
            e.fee_minor_units,
            e.restored,
            e.fee_treatment,
        )
        for e in usd.out_of_band_resolutions
    ]
    reduced = pb.OUT_OF_BAND_FEE_TREATMENT_REDUCED
    assert oob == [
        (paid.placement_id, "B", 10_000, 1_000, False, reduced),
        (partly.placement_id, "C2", 6_000, 600, False, reduced),  # all paid directly
        (wrong.placement_id, "D", 3_000, 0, True, reduced),  # restored: no fee
    ]
    assert usd.totals == pb.ReconciliationTotals(
        portal_payment_count=3,
        portal_amount_minor_units=9_002,
        portal_fee_minor_units=1_701,
        portal_net_minor_units=7_301,
        out_of_band_resolution_count=3,
        out_of_band_amount_minor_units=16_000,
        out_of_band_fee_minor_units=1_600,
        total_fee_minor_units=3_301,
    )

    waived = pb.FeeTerms(
        contingency_fee_basis_points=2_500,
        out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_WAIVED,
    )
    full = pb.FeeTerms(
        contingency_fee_basis_points=2_500,
        out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_FULL,
    )
    assert (await _report(matcher, today.isoformat(), waived)).currencies[
        1
    ].totals.out_of_band_fee_minor_units == 0
    assert [
        e.fee_minor_units
        for e in (await _report(matcher, today.isoformat(), full))
        .currencies[1]
        .out_of_band_resolutions
    ] == [2_500, 1_500, 0]


async def test_day_bounds_follow_the_time_zone(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 100_000))
    # 2026-03-08 is 23 hours long in New York (DST starts).
    await matcher.portal(
        placement.placement_id, "late-7th", 100, when=datetime(2026, 3, 8, 4, 30, tzinfo=UTC)
    )
    await matcher.portal(
        placement.placement_id, "early-8th", 200, when=datetime(2026, 3, 8, 5, 0, tzinfo=UTC)
    )
    await matcher.portal(
        placement.placement_id, "late-8th", 300, when=datetime(2026, 3, 9, 3, 59, tzinfo=UTC)
    )
    report = await _report(matcher, "2026-03-08", zone="America/New_York")
    assert report.start_time.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 8, 5, tzinfo=UTC)
    assert report.end_time.ToDatetime(tzinfo=UTC) == datetime(2026, 3, 9, 4, tzinfo=UTC)
    (usd,) = report.currencies
    assert [p.portal_payment_id for p in usd.portal_payments] == ["early-8th", "late-8th"]
    utc = await _report(matcher, "2026-03-08")
    assert [p.portal_payment_id for p in utc.currencies[0].portal_payments] == [
        "late-7th",
        "early-8th",
    ]
    empty = await _report(matcher, "2026-03-10", zone="America/New_York")
    assert list(empty.currencies) == []


BAD_REQUESTS: list[tuple[pb.GetReconciliationReportRequest, str]] = [
    (pb.GetReconciliationReportRequest(day="2026-03-08", fee_terms=TERMS), "tenant_id"),
    (pb.GetReconciliationReportRequest(tenant_id="a", fee_terms=TERMS), "day"),
    (pb.GetReconciliationReportRequest(tenant_id="a", day="8/3/2026", fee_terms=TERMS), "day"),
    (
        pb.GetReconciliationReportRequest(
            tenant_id="a", day="2026-03-08", time_zone="Mars/Olympus", fee_terms=TERMS
        ),
        "time_zone",
    ),
    (pb.GetReconciliationReportRequest(tenant_id="a", day="2026-03-08"), "fee_terms"),
    (
        pb.GetReconciliationReportRequest(
            tenant_id="a",
            day="2026-03-08",
            fee_terms=pb.FeeTerms(contingency_fee_basis_points=2_500),
        ),
        "fee_terms.out_of_band_fee_treatment",
    ),
    (
        pb.GetReconciliationReportRequest(
            tenant_id="a",
            day="2026-03-08",
            fee_terms=pb.FeeTerms(
                contingency_fee_basis_points=-1,
                out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_FULL,
            ),
        ),
        "fee_terms.contingency_fee_basis_points",
    ),
]


async def test_bad_report_request(matcher: Matcher) -> None:
    for request, field in BAD_REQUESTS:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.stub.GetReconciliationReport(request)
        assert invalid_field(info) == field


async def test_a_resolution_whose_payment_was_voided_earns_no_fee(matcher: Matcher) -> None:
    today = datetime.now(UTC).date().isoformat()
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("B", [("70", 10_000)]))
    await matcher.pay(qbo_payment("B", [], total=0, version="1", state=pb.ENTITY_STATE_VOIDED))
    assert list((await _report(matcher, today)).currencies) == []
    # The bookkeeper records the real payment: one resolution, one fee.
    await matcher.pay(qbo_payment("B2", [("70", 10_000)]))
    (usd,) = (await _report(matcher, today)).currencies
    assert [(e.payment_id, e.fee_minor_units) for e in usd.out_of_band_resolutions] == [
        ("B2", 1_000)
    ]
    assert usd.totals.out_of_band_amount_minor_units == 10_000
    assert (await matcher.get(placement.placement_id)).resolving_payment_id == "B2"
