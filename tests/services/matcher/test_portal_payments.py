"""RecordPortalPayment and the QBO mirror of a portal payment, in both orders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import (
    Matcher,
    invalid_field,
    outcomes,
    placement_input,
    qbo_invoice,
    qbo_payment,
    status_name,
)


async def test_full_portal_payment_resolves_paid_portal(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    reply = await matcher.portal(placement.placement_id, "pp-1", 10_000)
    assert outcomes([reply.decision]) == ["RESOLVED_PAID_PORTAL"]
    assert reply.decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_STOP
    assert status_name(reply.placement) == "RESOLVED_PAID_PORTAL"
    assert reply.placement.balance.minor_units == 0
    assert await matcher.outbox() == [("stop", "resolved_paid_portal", 0)]


async def test_portal_payment_is_idempotent_by_its_id(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    first = await matcher.portal(placement.placement_id, "pp-1", 4_000)
    assert outcomes([first.decision]) == ["PARTIAL_PAYMENT"]
    again = await matcher.portal(placement.placement_id, "pp-1", 4_000)
    assert outcomes([again.decision]) == ["DUPLICATE_NO_CHANGE"]
    assert again.placement.balance.minor_units == 6_000
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.portal(placement.placement_id, "pp-1", 5_000)
    assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert await matcher.outbox() == [("balance_changed", "active", 6_000)]


async def test_portal_payment_in_another_currency_is_refused(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.portal(placement.placement_id, "pp-1", 10_000, currency="EUR")
    assert invalid_field(info) == "amount.currency_code"
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 10_000


async def test_unknown_placement_is_not_found(matcher: Matcher) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.portal("no-such-placement", "pp-1", 100)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_qbo_mirror_after_portal_payment_is_not_counted_twice(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    paid_at = datetime.now(UTC)
    await matcher.portal(placement.placement_id, "pp-1", 4_000, when=paid_at)

    # The bookkeeper records the same money in QBO 20 minutes later (1 cent off).
    mirror = qbo_payment("500", [("70", 3_999)], created=paid_at + timedelta(minutes=20))
    (decision,) = await matcher.pay(mirror)

    assert outcomes([decision]) == ["MIRRORS_PORTAL_PAYMENT"]
    assert "pp-1" in decision.detail
    after = await matcher.get(placement.placement_id)
    assert (status_name(after), after.balance.minor_units) == ("ACTIVE", 6_000)
    assert after.resolution_reason == ""
    assert await matcher.outbox() == [("balance_changed", "active", 6_000)]
    # The invoice, now showing the mirror, changes nothing either.
    assert outcomes(
        await matcher.invoice(
            qbo_invoice("70", 6_001, linked=[("500", pb.LINKED_TXN_TYPE_PAYMENT)])
        )
    ) == ["DUPLICATE_NO_CHANGE"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 6_000


async def test_full_mirror_after_portal_payment_is_not_out_of_band(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.portal(placement.placement_id, "pp-1", 10_000)
    (decision,) = await matcher.pay(qbo_payment("500", [("70", 10_000)]))
    assert outcomes([decision]) == ["MIRRORS_PORTAL_PAYMENT"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "RESOLVED_PAID_PORTAL"
    assert after.resolving_payment_id == ""
    assert [kind for kind, _, _ in await matcher.outbox()] == ["stop"]


async def test_portal_payment_recorded_after_its_qbo_mirror(matcher: Matcher) -> None:
    """QBO first: the payment looks out-of-band; the portal payment then claims it."""
    partial, full = await matcher.place(placement_input("70", 10_000), placement_input("71", 5_000))
    paid_at = datetime.now(UTC)
    await matcher.pay(qbo_payment("500", [("70", 4_000)], created=paid_at))
    await matcher.pay(qbo_payment("501", [("71", 5_000)], created=paid_at))
    assert status_name(await matcher.get(full.placement_id)) == "RESOLVED_OUT_OF_BAND"

    late_partial = await matcher.portal(
        partial.placement_id, "pp-1", 4_000, when=paid_at - timedelta(minutes=5)
    )
    late_full = await matcher.portal(full.placement_id, "pp-2", 5_000, when=paid_at)

    assert outcomes([late_partial.decision, late_full.decision]) == [
        "MIRRORS_PORTAL_PAYMENT",
        "MIRRORS_PORTAL_PAYMENT",
    ]
    assert late_partial.placement.balance.minor_units == 6_000  # not 2,000
    assert status_name(late_full.placement) == "RESOLVED_PAID_PORTAL"
    assert late_full.placement.resolution_reason == "paid through the portal"
    assert late_full.placement.resolving_payment_id == ""
    # No second stop and no resume: outreach had already stopped.
    assert [kind for kind, _, _ in await matcher.outbox(full.placement_id)] == ["stop"]


async def test_qbo_payment_outside_the_window_is_out_of_band(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    paid_at = datetime.now(UTC) - timedelta(hours=3)
    await matcher.portal(placement.placement_id, "pp-1", 4_000, when=paid_at)
    (decision,) = await matcher.pay(qbo_payment("500", [("70", 4_000)]))
    assert outcomes([decision]) == ["PARTIAL_PAYMENT"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 2_000

    # With a wider window, read at decision time, the next one is a mirror.
    (other,) = await matcher.place(placement_input("71", 10_000))
    await matcher.portal(other.placement_id, "pp-2", 4_000, when=paid_at)
    await matcher.set_settings(window=240)
    (mirrored,) = await matcher.pay(qbo_payment("501", [("71", 4_000)]))
    assert outcomes([mirrored]) == ["MIRRORS_PORTAL_PAYMENT"]


async def test_portal_payment_after_resolution_is_flagged_as_possible_double_payment(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(
        qbo_payment("500", [("70", 10_000)], created=datetime.now(UTC) - timedelta(days=2))
    )
    reply = await matcher.portal(placement.placement_id, "pp-1", 10_000)
    assert outcomes([reply.decision]) == ["FLAGGED_FOR_REVIEW"]
    assert status_name(reply.placement) == "NEEDS_REVIEW"
    assert "double payment" in reply.placement.review_reason
    assert all(kind != "resume" for kind, _, _ in await matcher.outbox())
