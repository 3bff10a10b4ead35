"""Payments that arrive for an already stopped placement are never silent.

A QBO payment applied to a placement already paid or closed by something else is recorded,
audited with its id and amount, flags the placement as a possible double payment (status
and outreach unchanged: nothing resumes) and is listed in the reconciliation report, once.
An overpayment's excess and unapplied remainder are recorded in the audit and the report.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.helpers.report_day import noon_report_day
from tests.services.matcher.conftest import (
    Matcher,
    invalid_field,
    outcomes,
    placement_input,
    qbo_invoice,
    qbo_payment,
    reason_of,
    status_name,
)

PAYMENT = pb.LINKED_TXN_TYPE_PAYMENT
FLAG = pb.REVIEW_FLAG_POSSIBLE_DOUBLE_PAYMENT
FLAGGED = "placement.flagged_possible_double_payment"
TERMS = pb.FeeTerms(
    contingency_fee_basis_points=2_500,
    out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_FULL,
)
HOURS_AGO = datetime.now(UTC) - timedelta(hours=3)  # outside the 60-minute mirror window


async def _report(matcher: Matcher) -> pb.CurrencyReconciliation:
    zone, day = noon_report_day()  # one report, even around midnight UTC
    report = await matcher.stub.GetReconciliationReport(
        pb.GetReconciliationReportRequest(
            tenant_id="acme", time_zone=zone, day=day, fee_terms=TERMS
        )
    )
    (usd,) = [c for c in report.currencies if c.currency_code == "USD"]
    return usd


async def _flags(matcher: Matcher, placement_id: str) -> list[pb.AuditEvent]:
    return [e for e in await matcher.audit(placement_id) if e.action == FLAGGED]


async def _flagged_ids(matcher: Matcher) -> list[str]:
    reply = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(tenant_id="acme", review_flags=[FLAG])
    )
    return [p.placement_id for p in reply.placements]


async def test_qbo_payment_after_a_portal_payment_outside_the_window_is_flagged_once(
    matcher: Matcher,
) -> None:
    placement, other = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    await matcher.portal(placement.placement_id, "pp-1", 10_000, when=HOURS_AGO)
    paid = await matcher.get(placement.placement_id)
    assert status_name(paid) == "RESOLVED_PAID_PORTAL"

    (decision,) = await matcher.pay(qbo_payment("500", [("70", 10_000)]))

    assert outcomes([decision]) == ["POSSIBLE_DOUBLE_PAYMENT"]
    assert "QBO payment 500 of 100.00 USD" in decision.detail
    after = await matcher.get(placement.placement_id)
    # Still stopped as before: the flag changes neither status nor outreach.
    assert status_name(after) == "RESOLVED_PAID_PORTAL"
    assert after.balance.minor_units == 0
    assert after.review_flag == FLAG
    assert "possible double payment, a refund may be due" in after.review_flag_reason
    assert "paid through the portal" in after.review_flag_reason
    assert after.flag_time.seconds > 0
    assert after.version > paid.version
    assert await matcher.outbox(placement.placement_id) == [("stop", "resolved_paid_portal", 0)]
    (flag,) = await _flags(matcher, placement.placement_id)
    assert flag.details["payment_id"] == "500"
    assert flag.details["amount_minor_units"] == "10000"
    assert flag.details["excess_minor_units"] == "10000"
    assert flag.details["previous_status"] == "resolved_paid_portal"
    assert await _flagged_ids(matcher) == [placement.placement_id]
    assert (await matcher.get(other.placement_id)).review_flag == pb.REVIEW_FLAG_UNSPECIFIED

    # The same payment from the CDC poll, then the invoice showing it: flagged once.
    audits = await matcher.audit_count()
    (again,) = await matcher.pay(qbo_payment("500", [("70", 10_000)]), pb.CHANGE_SOURCE_CDC)
    assert outcomes([again]) == ["DUPLICATE_NO_CHANGE"]
    await matcher.invoice(qbo_invoice("70", 0, linked=[("500", PAYMENT)]), pb.CHANGE_SOURCE_CDC)
    assert await matcher.audit_count() == audits
    assert len(await _flags(matcher, placement.placement_id)) == 1

    section = await _report(matcher)
    (entry,) = section.possible_double_payments
    assert (entry.placement_id, entry.invoice_id, entry.payment_id) == (
        placement.placement_id,
        "70",
        "500",
    )
    assert (entry.amount_minor_units, entry.excess_minor_units) == (10_000, 10_000)
    assert entry.previous_status == pb.PLACEMENT_STATUS_RESOLVED_PAID_PORTAL
    # It changes no fee: the portal payment is the only money collected through us.
    assert [p.portal_payment_id for p in section.portal_payments] == ["pp-1"]
    assert list(section.out_of_band_resolutions) == []
    assert section.totals.total_fee_minor_units == 2_500


async def test_invoice_showing_the_payment_first_flags_it_once(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.portal(placement.placement_id, "pp-1", 10_000, when=HOURS_AGO)

    (decision,) = await matcher.invoice(qbo_invoice("70", 0, linked=[("500", PAYMENT)]))
    assert outcomes([decision]) == ["POSSIBLE_DOUBLE_PAYMENT"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "RESOLVED_PAID_PORTAL"
    assert after.review_flag == FLAG
    assert "QBO payment 500 of 100.00 USD" in after.review_flag_reason

    # The payment itself, read afterwards, is the same money: no second flag.
    (paid,) = await matcher.pay(qbo_payment("500", [("70", 10_000)]))
    assert outcomes([paid]) == ["DUPLICATE_NO_CHANGE"]
    assert len(await _flags(matcher, placement.placement_id)) == 1
    assert len((await _report(matcher)).possible_double_payments) == 1
    assert await matcher.outbox(placement.placement_id) == [("stop", "resolved_paid_portal", 0)]


async def test_payment_after_an_earlier_qbo_payment_resolved_it_is_flagged(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.portal(placement.placement_id, "pp-1", 6_000, when=HOURS_AGO)
    (first,) = await matcher.pay(qbo_payment("500", [("70", 4_000)]))
    assert outcomes([first]) == ["RESOLVED_OUT_OF_BAND"]

    # Hours later the bookkeeper records the portal payment in QBO too.
    (second,) = await matcher.pay(qbo_payment("501", [("70", 6_000)]))

    assert outcomes([second]) == ["POSSIBLE_DOUBLE_PAYMENT"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "RESOLVED_OUT_OF_BAND"
    assert after.resolving_payment_id == "500"
    assert "paid out-of-band (QBO payment 500)" in after.review_flag_reason
    assert "QBO payment 501 of 60.00 USD" in after.review_flag_reason
    # The out-of-band resolution and its fee stand on the first payment alone.
    section = await _report(matcher)
    (resolution,) = section.out_of_band_resolutions
    assert resolution.amount_minor_units == 4_000
    (entry,) = section.possible_double_payments
    assert (entry.payment_id, entry.excess_minor_units) == ("501", 6_000)
    assert entry.previous_status == pb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND
    assert [kind for kind, _, _ in await matcher.outbox(placement.placement_id)] == [
        "balance_changed",
        "stop",
    ]


async def test_overpayment_excess_and_unapplied_remainder_are_recorded(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.portal(placement.placement_id, "pp-1", 3_000, when=HOURS_AGO)

    (decision,) = await matcher.pay(qbo_payment("500", [("70", 10_000)], unapplied=500))

    assert outcomes([decision]) == ["RESOLVED_OUT_OF_BAND"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "RESOLVED_OUT_OF_BAND"
    assert after.review_flag == FLAG
    assert "30.00 USD more than the 70.00 USD still owed" in after.review_flag_reason
    assert "5.00 USD of it is unapplied" in after.review_flag_reason
    events = await matcher.audit(placement.placement_id)
    (resolved,) = [e for e in events if e.action == "placement.resolved_out_of_band"]
    assert resolved.details["excess_minor_units"] == "3000"
    assert resolved.details["unapplied_minor_units"] == "500"
    (flag,) = [e for e in events if e.action == FLAGGED]
    assert json.loads(flag.details["unapplied_minor_units"]) == 500
    (entry,) = (await _report(matcher)).possible_double_payments
    assert (entry.amount_minor_units, entry.excess_minor_units, entry.unapplied_minor_units) == (
        10_000,
        3_000,
        500,
    )
    assert entry.previous_status == pb.PLACEMENT_STATUS_ACTIVE


async def test_a_payment_within_what_is_owed_flags_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("500", [("70", 4_000)]))
    await matcher.pay(qbo_payment("501", [("70", 6_000)]))
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "RESOLVED_OUT_OF_BAND"
    assert (after.review_flag, after.review_flag_reason) == (pb.REVIEW_FLAG_UNSPECIFIED, "")
    assert not after.HasField("flag_time")
    assert await _flagged_ids(matcher) == []
    assert list((await _report(matcher)).possible_double_payments) == []


async def test_review_flag_filter_rejects_unspecified(matcher: Matcher) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await matcher.stub.ListPlacements(
            pb.ListPlacementsRequest(tenant_id="acme", review_flags=[pb.REVIEW_FLAG_UNSPECIFIED])
        )
    assert invalid_field(caught) == "review_flags"


async def _clear(
    matcher: Matcher, placement: pb.Placement, *, actor: str = "dana@support", version: int = 0
) -> pb.Placement:
    reply = await matcher.stub.ClearReviewFlag(
        pb.ClearReviewFlagRequest(
            placement_id=placement.placement_id,
            expected_version=version or placement.version,
            actor=actor,
            reason="ticket 913: refunded 100.00 USD to the debtor",
        )
    )
    return reply.placement


async def test_a_human_clears_the_flag_after_review_and_nothing_else_changes(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.portal(placement.placement_id, "pp-1", 10_000, when=HOURS_AGO)
    await matcher.pay(qbo_payment("500", [("70", 10_000)]))
    flagged = await matcher.get(placement.placement_id)
    assert flagged.review_flag == FLAG

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _clear(matcher, flagged, actor=" ")
    assert invalid_field(caught) == "actor"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _clear(matcher, flagged, version=flagged.version - 1)
    assert caught.value.code() == grpc.StatusCode.ABORTED
    assert (await matcher.get(placement.placement_id)).review_flag == FLAG

    cleared = await _clear(matcher, flagged)

    assert (cleared.review_flag, cleared.review_flag_reason) == (pb.REVIEW_FLAG_UNSPECIFIED, "")
    assert not cleared.HasField("flag_time")
    assert cleared.version == flagged.version + 1
    assert (status_name(cleared), cleared.balance.minor_units) == ("RESOLVED_PAID_PORTAL", 0)
    assert await matcher.outbox(placement.placement_id) == [("stop", "resolved_paid_portal", 0)]
    event = (await matcher.audit(placement.placement_id))[-1]
    assert (event.action, event.actor) == ("placement.review_flag_cleared", "dana@support")
    assert event.details["previous_review_flag"] == "possible_double_payment"
    assert await _flagged_ids(matcher) == []
    assert len((await _report(matcher)).possible_double_payments) == 1  # the day's record stays

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _clear(matcher, cleared)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(caught) == "PLACEMENT_NOT_FLAGGED"


async def test_voiding_the_double_payment_in_qbo_is_audited_and_the_flag_stays(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.portal(placement.placement_id, "pp-1", 10_000, when=HOURS_AGO)
    await matcher.pay(qbo_payment("500", [("70", 10_000)]))

    (decision,) = await matcher.pay(
        qbo_payment("500", state=pb.ENTITY_STATE_VOIDED, version="1", total=0)
    )

    assert outcomes([decision]) == ["DUPLICATE_NO_CHANGE"]
    event = (await matcher.audit(placement.placement_id))[-1]
    assert event.action == "placement.double_payment_removed"
    assert event.reason.startswith("QBO payment 500, recorded as a possible double payment, was")
    assert "voided in QBO" in event.reason
    after = await matcher.get(placement.placement_id)
    assert (status_name(after), after.review_flag) == ("RESOLVED_PAID_PORTAL", FLAG)
    assert await matcher.outbox(placement.placement_id) == [("stop", "resolved_paid_portal", 0)]
