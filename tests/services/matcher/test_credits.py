"""ApplyAccountingCredit: a credit allocated to invoices (a Xero credit note) decides as a
QBO payment drawing a credit memo does: closed or lowered, never out of band."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
import pytest

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.helpers.report_day import noon_report_day
from tests.services.matcher.conftest import (
    CUSTOMER,
    REALM,
    TENANT,
    Matcher,
    invalid_field,
    outcomes,
    placement_input,
    qbo_payment,
    status_name,
    ts,
    usd,
)


def credit(
    credit_id: str,
    allocations: Sequence[tuple[str, int]],
    *,
    version: str = "1",
    sequence: int = 0,
    state: pb.EntityState.ValueType = pb.ENTITY_STATE_ACTIVE,
    currency: str = "USD",
) -> pb.AccountingCredit:
    return pb.AccountingCredit(
        credit_id=credit_id,
        version=version,
        version_sequence=sequence,
        customer_id=CUSTOMER,
        allocations=[
            pb.CreditAllocation(invoice_id=i, amount=usd(a, currency)) for i, a in allocations
        ],
        state=state,
        create_time=ts(datetime.now(UTC)),
        last_updated_time=ts(datetime.now(UTC)),
    )


def request(c: pb.AccountingCredit) -> pb.ApplyAccountingCreditRequest:
    return pb.ApplyAccountingCreditRequest(
        tenant_id=TENANT,
        provider=pb.PROVIDER_XERO,
        company_id=REALM,
        credit=c,
        source=pb.CHANGE_SOURCE_WEBHOOK,
        source_event_id="evt-c",
    )


async def apply(matcher: Matcher, c: pb.AccountingCredit) -> list[pb.PlacementDecision]:
    reply = await matcher.stub.ApplyAccountingCredit(request(c))
    return list(reply.decisions)


async def place_xero(matcher: Matcher, *inputs: pb.PlacementInput) -> list[pb.Placement]:
    reply = await matcher.stub.UpsertPlacements(
        pb.UpsertPlacementsRequest(
            tenant_id=TENANT, provider=pb.PROVIDER_XERO, company_id=REALM, placements=inputs
        )
    )
    return [await matcher.get(r.placement_id) for r in reply.results]


async def test_a_credit_closes_or_lowers_like_a_qbo_memo_payment(matcher: Matcher) -> None:
    # The same invoices placed from QBO and from Xero (same company id): two placements.
    qbo_full, qbo_part = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 5_000)
    )
    xero_full, xero_part = await place_xero(
        matcher, placement_input("70", 10_000), placement_input("71", 5_000)
    )
    assert xero_full.placement_id != qbo_full.placement_id
    assert (xero_full.provider, qbo_full.provider) == (pb.PROVIDER_XERO, pb.PROVIDER_QBO)

    memo = await matcher.pay(
        qbo_payment("400", [("70", 10_000), ("71", 2_000)], credit_memos=[("52", 12_000)])
    )
    note = await apply(matcher, credit("52", [("70", 10_000), ("71", 2_000)]))
    assert outcomes(note) == outcomes(memo) == ["CLOSED_BALANCE_ZERO", "BALANCE_UPDATED"]
    for qbo, xero in ((qbo_full, xero_full), (qbo_part, xero_part)):
        after_qbo, after_xero = (
            await matcher.get(qbo.placement_id),
            await matcher.get(xero.placement_id),
        )
        assert (status_name(after_xero), after_xero.balance.minor_units) == (
            status_name(after_qbo),
            after_qbo.balance.minor_units,
        )
    listed = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(tenant_id=TENANT, provider=pb.PROVIDER_XERO)
    )
    assert {p.placement_id for p in listed.placements} == {
        xero_full.placement_id,
        xero_part.placement_id,
    }
    closed = await matcher.get(xero_full.placement_id)
    assert status_name(closed) == "CLOSED"
    assert "credit memo 52" in closed.resolution_reason
    assert (await matcher.get(xero_part.placement_id)).balance.minor_units == 3_000
    # Nothing was paid out of band, so no fee is reported.
    zone, day = noon_report_day()  # one report, even around midnight UTC
    report = await matcher.stub.GetReconciliationReport(
        pb.GetReconciliationReportRequest(
            tenant_id=TENANT,
            time_zone=zone,
            day=day,
            fee_terms=pb.FeeTerms(
                contingency_fee_basis_points=2500,
                out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_FULL,
            ),
        )
    )
    assert all(not c.out_of_band_resolutions for c in report.currencies)

    # The same version again changes nothing; a later allocation applies the difference.
    again = await apply(matcher, credit("52", [("70", 10_000), ("71", 2_000)]))
    assert set(outcomes(again)) == {"DUPLICATE_NO_CHANGE"}
    more = await apply(
        matcher, credit("52", [("70", 10_000), ("71", 3_000)], version="2", sequence=2)
    )
    assert outcomes(more)[-1] == "EDIT_DIFFERENCE_APPLIED"
    assert (await matcher.get(xero_part.placement_id)).balance.minor_units == 2_000
    # An older version read late changes nothing.
    stale = await apply(matcher, credit("52", [("70", 10_000)], version="1", sequence=1))
    assert set(outcomes(stale)) == {"DUPLICATE_NO_CHANGE"}
    assert (await matcher.get(xero_part.placement_id)).balance.minor_units == 2_000


async def test_a_deleted_credit_that_closed_a_placement_asks_for_review(
    matcher: Matcher,
) -> None:
    (placement,) = await place_xero(matcher, placement_input("70", 10_000))
    await apply(matcher, credit("C1", [("70", 10_000)]))
    gone = await apply(matcher, credit("C1", [], version="", state=pb.ENTITY_STATE_DELETED))
    assert outcomes(gone) == ["FLAGGED_FOR_REVIEW"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "NEEDS_REVIEW"
    assert after.balance.minor_units == 10_000  # owed again, as the books now say
    # Outreach stays stopped until a person decides: no RESUME.
    assert [t for t, _, _ in await matcher.outbox()] == ["stop", "pause"]


async def test_a_credit_and_a_payment_with_the_same_id_are_two_facts(matcher: Matcher) -> None:
    (placement,) = await place_xero(matcher, placement_input("70", 10_000))
    paid = await matcher.stub.ApplyAccountingPayment(
        pb.ApplyAccountingPaymentRequest(
            tenant_id=TENANT,
            provider=pb.PROVIDER_XERO,
            company_id=REALM,
            payment=qbo_payment("9", [("70", 4_000)]),
            source=pb.CHANGE_SOURCE_WEBHOOK,
        )
    )
    assert outcomes(paid.decisions) == ["PARTIAL_PAYMENT"]
    assert outcomes(await apply(matcher, credit("9", [("70", 1_000)]))) == ["BALANCE_UPDATED"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 5_000


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda r: r.ClearField("credit"), "credit"),
        (lambda r: setattr(r, "provider", pb.PROVIDER_UNSPECIFIED), "provider"),
        (lambda r: setattr(r.credit, "credit_id", ""), "credit.credit_id"),
        (lambda r: setattr(r.credit, "version", ""), "credit.version"),
        (lambda r: setattr(r.credit, "state", pb.ENTITY_STATE_UNSPECIFIED), "credit.state"),
        (
            lambda r: setattr(r.credit.allocations[1].amount, "currency_code", "EUR"),
            "credit.allocations[1].amount.currency_code",
        ),
        (
            lambda r: setattr(r.credit.allocations[0].amount, "minor_units", 0),
            "credit.allocations[0].amount.minor_units",
        ),
        (
            lambda r: setattr(r.credit.allocations[0], "invoice_id", " "),
            "credit.allocations[0].invoice_id",
        ),
    ],
)
async def test_a_bad_credit_is_refused_and_changes_nothing(
    matcher: Matcher, mutate: object, field: str
) -> None:
    (placement,) = await place_xero(matcher, placement_input("70", 10_000))
    bad = request(credit("C1", [("70", 1_000), ("70", 500)]))
    assert callable(mutate)
    mutate(bad)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.stub.ApplyAccountingCredit(bad)
    assert invalid_field(info) == field
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 10_000
    assert await matcher.outbox() == []


async def test_versions_with_an_order_but_no_number_compare_by_their_order(
    matcher: Matcher,
) -> None:
    """Xero's versions are times: the text says nothing of the order, the sequence does."""
    (placement,) = await place_xero(matcher, placement_input("70", 10_000))
    newer = credit("C7", [("70", 3_000)], version="2026-11-27T10:00:05Z", sequence=1_795_000_005)
    older = credit("C7", [("70", 1_000)], version="2026-11-27T10:00:01Z", sequence=1_795_000_001)
    assert outcomes(await apply(matcher, newer)) == ["BALANCE_UPDATED"]
    # Read late, the older version changes nothing (by their text alone it would apply).
    assert outcomes(await apply(matcher, older)) == ["DUPLICATE_NO_CHANGE"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 7_000
