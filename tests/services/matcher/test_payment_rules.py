"""ApplyAccountingPayment: one test (at least) per row of the design's "Matching rules"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import (
    Matcher,
    outcomes,
    placement_input,
    qbo_invoice,
    qbo_payment,
    status_name,
)


async def test_full_payment_resolves_out_of_band_and_stops_outreach(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    decisions = await matcher.pay(qbo_payment("163", [("70", 10_000)]))

    assert outcomes(decisions) == ["RESOLVED_OUT_OF_BAND"]
    (decision,) = decisions
    assert decision.placement_id == placement.placement_id
    assert decision.invoice_id == "70"
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_STOP
    assert decision.applied_amount.minor_units == 10_000
    assert "163" in decision.detail
    assert "100.00 USD" in decision.detail
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "RESOLVED_OUT_OF_BAND"
    assert after.resolution_reason == "paid out-of-band"
    assert after.resolving_payment_id == "163"
    assert after.balance.minor_units == 0
    assert after.HasField("resolve_time")
    assert after.version == placement.version + 1
    assert await matcher.outbox() == [("stop", "resolved_out_of_band", 0)]
    (audit,) = [e for e in await matcher.audit(placement.placement_id) if "resolved" in e.action]
    assert audit.action == "placement.resolved_out_of_band"
    assert audit.actor == "system"
    assert audit.details["payment_id"] == "163"
    assert audit.details["provider_version"] == "0"
    assert audit.details["applied_minor_units"] == "10000"
    assert audit.details["source"] == "webhook"
    assert audit.details["source_event_id"] == "evt-1"


async def test_what_is_left_within_tolerance_counts_as_paid(matcher: Matcher) -> None:
    one_cent_left, two_cents_left = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    assert outcomes(await matcher.pay(qbo_payment("1", [("70", 9_999)]))) == [
        "RESOLVED_OUT_OF_BAND"
    ]
    assert outcomes(await matcher.pay(qbo_payment("2", [("71", 9_998)]))) == ["PARTIAL_PAYMENT"]
    assert status_name(await matcher.get(two_cents_left.placement_id)) == "ACTIVE"
    assert status_name(await matcher.get(one_cent_left.placement_id)) == "RESOLVED_OUT_OF_BAND"


async def test_tolerance_is_read_at_decision_time(matcher: Matcher) -> None:
    (_placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.set_settings(tolerance=100)
    assert outcomes(await matcher.pay(qbo_payment("1", [("70", 9_900)]))) == [
        "RESOLVED_OUT_OF_BAND"
    ]


async def test_partial_payment_reduces_balance_and_outreach_continues(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    (decision,) = await matcher.pay(qbo_payment("163", [("70", 5_500)]))

    assert outcomes([decision]) == ["PARTIAL_PAYMENT"]
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_BALANCE_CHANGED
    assert decision.balance.minor_units == 4_500
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "ACTIVE"
    assert after.balance.minor_units == 4_500
    assert after.original_amount.minor_units == 10_000
    assert after.resolution_reason == ""
    assert await matcher.outbox() == [("balance_changed", "active", 4_500)]


async def test_same_payment_again_changes_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    payment = qbo_payment("163", [("70", 4_000)])
    await matcher.pay(payment)
    before = await matcher.get(placement.placement_id)
    audits = await matcher.audit_count()

    for source in (pb.CHANGE_SOURCE_WEBHOOK, pb.CHANGE_SOURCE_CDC, pb.CHANGE_SOURCE_REPLAY):
        assert outcomes(await matcher.pay(payment, source)) == ["DUPLICATE_NO_CHANGE"]

    assert await matcher.get(placement.placement_id) == before
    assert await matcher.audit_count() == audits
    assert await matcher.outbox() == [("balance_changed", "active", 6_000)]


async def test_an_older_version_arriving_late_changes_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 3_000)], version="2"))
    stale = await matcher.pay(qbo_payment("163", [("70", 9_000)], version="1"))
    assert outcomes(stale) == ["DUPLICATE_NO_CHANGE"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 7_000


async def test_edited_payment_applies_only_the_difference(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 3_000)], version="0"))

    (more,) = await matcher.pay(qbo_payment("163", [("70", 5_000)], version="1"))
    assert outcomes([more]) == ["EDIT_DIFFERENCE_APPLIED"]
    assert more.applied_amount.minor_units == 2_000
    assert more.balance.minor_units == 5_000

    (less,) = await matcher.pay(qbo_payment("163", [("70", 4_000)], version="2"))
    assert outcomes([less]) == ["EDIT_DIFFERENCE_APPLIED"]
    assert less.applied_amount.minor_units == -1_000
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 6_000
    assert await matcher.outbox() == [
        ("balance_changed", "active", 7_000),
        ("balance_changed", "active", 5_000),
        ("balance_changed", "active", 6_000),
    ]


async def test_an_edit_that_completes_the_payment_resolves(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 3_000)], version="0"))
    (decision,) = await matcher.pay(qbo_payment("163", [("70", 10_000)], version="1"))
    assert outcomes([decision]) == ["RESOLVED_OUT_OF_BAND"]
    assert decision.applied_amount.minor_units == 7_000
    after = await matcher.get(placement.placement_id)
    assert after.resolution_reason == "paid out-of-band"


async def test_payment_moved_to_another_invoice_moves_the_amount(matcher: Matcher) -> None:
    a, b = await matcher.place(placement_input("70", 10_000), placement_input("71", 8_000))
    await matcher.pay(qbo_payment("163", [("70", 8_000)], version="0"))
    decisions = await matcher.pay(qbo_payment("163", [("71", 8_000)], version="1"))
    by_invoice = {d.invoice_id: d for d in decisions}
    assert outcomes([by_invoice["71"]]) == ["RESOLVED_OUT_OF_BAND"]
    assert outcomes([by_invoice["70"]]) == ["EDIT_DIFFERENCE_APPLIED"]
    assert (await matcher.get(a.placement_id)).balance.minor_units == 10_000
    assert status_name(await matcher.get(b.placement_id)) == "RESOLVED_OUT_OF_BAND"


async def test_voided_payment_after_resolution_flags_review_and_never_resumes(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 10_000)], version="0"))
    voided = qbo_payment("163", [], total=0, version="1", state=pb.ENTITY_STATE_VOIDED)

    (decision,) = await matcher.pay(voided)

    assert outcomes([decision]) == ["FLAGGED_FOR_REVIEW"]
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_PAUSE
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "NEEDS_REVIEW"
    assert after.balance.minor_units == 10_000  # QBO re-opened the invoice
    assert "163" in after.review_reason
    assert "voided" in after.review_reason
    assert after.resolution_reason == ""
    assert await matcher.outbox() == [
        ("stop", "resolved_out_of_band", 0),
        ("pause", "needs_review", 10_000),
    ]
    # Replays of the void change nothing and never resume outreach.
    assert outcomes(await matcher.pay(voided, pb.CHANGE_SOURCE_CDC)) == ["DUPLICATE_NO_CHANGE"]
    assert all(kind != "resume" for kind, _, _ in await matcher.outbox())


async def test_deleted_payment_after_resolution_flags_review(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 10_000)]))
    deleted = pb.AccountingPayment(payment_id="163", state=pb.ENTITY_STATE_DELETED)

    (decision,) = await matcher.pay(deleted)

    assert outcomes([decision]) == ["FLAGGED_FOR_REVIEW"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "NEEDS_REVIEW"
    assert "deleted" in after.review_reason
    assert [kind for kind, _, _ in await matcher.outbox()] == ["stop", "pause"]
    assert outcomes(await matcher.pay(deleted)) == ["DUPLICATE_NO_CHANGE"]


async def test_voided_partial_payment_puts_the_amount_back(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 4_000)]))
    voided = qbo_payment("163", [], total=0, version="1", state=pb.ENTITY_STATE_VOIDED)
    (decision,) = await matcher.pay(voided)
    assert outcomes([decision]) == ["EDIT_DIFFERENCE_APPLIED"]
    after = await matcher.get(placement.placement_id)
    assert (status_name(after), after.balance.minor_units) == ("ACTIVE", 10_000)


async def test_unapplied_payment_of_about_the_amount_pauses_pending_review(
    matcher: Matcher,
) -> None:
    matching_one, other_amount, other_customer = await matcher.place(
        placement_input("70", 10_000),
        placement_input("71", 25_000),
        placement_input("72", 10_000, customer="99"),
    )
    payment = qbo_payment("200", [], unapplied=10_000)

    decisions = await matcher.pay(payment)

    assert outcomes(decisions) == ["PAUSED_UNAPPLIED_PAYMENT"]
    assert decisions[0].placement_id == matching_one.placement_id
    assert decisions[0].outreach_event_type == pb.OUTREACH_EVENT_TYPE_PAUSE
    paused = await matcher.get(matching_one.placement_id)
    assert status_name(paused) == "PAUSED_PENDING_REVIEW"
    assert paused.balance.minor_units == 10_000  # never resolved on this evidence
    assert "200" in paused.review_reason
    assert "unapplied" in paused.review_reason
    assert status_name(await matcher.get(other_amount.placement_id)) == "ACTIVE"
    assert status_name(await matcher.get(other_customer.placement_id)) == "ACTIVE"
    assert await matcher.outbox() == [("pause", "paused_pending_review", 10_000)]
    assert [d.placement_id for d in await matcher.pay(payment)] == [matching_one.placement_id]
    assert len(await matcher.outbox()) == 1


async def test_unapplied_payment_later_applied_resolves_but_a_partial_does_not_resume(
    matcher: Matcher,
) -> None:
    full, part = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000, customer="21")
    )
    await matcher.pay(qbo_payment("200", [], unapplied=10_000))
    await matcher.pay(qbo_payment("201", [], unapplied=10_000, customer="21"))
    assert outcomes(await matcher.pay(qbo_payment("200", [("70", 10_000)], version="1"))) == [
        "RESOLVED_OUT_OF_BAND"
    ]
    (decision,) = await matcher.pay(
        qbo_payment("201", [("71", 4_000)], unapplied=6_000, customer="21", version="1")
    )
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_UNSPECIFIED
    after = await matcher.get(part.placement_id)
    assert (status_name(after), after.balance.minor_units) == ("PAUSED_PENDING_REVIEW", 6_000)
    assert status_name(await matcher.get(full.placement_id)) == "RESOLVED_OUT_OF_BAND"
    assert all(kind != "resume" for kind, _, _ in await matcher.outbox())


async def test_unapplied_payment_covering_more_than_the_balance_pauses(
    matcher: Matcher,
) -> None:
    """400.00 unapplied from a customer who owes 200.00: that may well be the payment (an
    overpayment, or several invoices paid at once). When in doubt, pause."""
    owed, larger = await matcher.place(placement_input("70", 20_000), placement_input("71", 50_000))
    decisions = await matcher.pay(qbo_payment("200", [], unapplied=40_000))
    assert outcomes(decisions) == ["PAUSED_UNAPPLIED_PAYMENT"]
    assert status_name(await matcher.get(owed.placement_id)) == "PAUSED_PENDING_REVIEW"
    assert status_name(await matcher.get(larger.placement_id)) == "ACTIVE"


async def test_unapplied_payment_read_first_pauses_once_a_payment_leaves_less(
    matcher: Matcher,
) -> None:
    """Whatever order the matcher reads them in: 300.00 unapplied, then a 200.00 payment
    leaves 200.00 of 400.00 owed, which the unapplied money covers."""
    (placement,) = await matcher.place(placement_input("70", 40_000))
    assert outcomes(await matcher.pay(qbo_payment("200", [], unapplied=30_000))) == []
    (decision,) = await matcher.pay(qbo_payment("201", [("70", 20_000)]))
    assert outcomes([decision]) == ["PAUSED_UNAPPLIED_PAYMENT"]
    after = await matcher.get(placement.placement_id)
    assert (status_name(after), after.balance.minor_units) == ("PAUSED_PENDING_REVIEW", 20_000)
    assert "200" in after.review_reason
    assert [kind for kind, _, _ in await matcher.outbox()] == ["balance_changed", "pause"]


async def test_unapplied_payment_read_first_pauses_once_the_invoice_shows_less(
    matcher: Matcher,
) -> None:
    """The same when the drop is first seen on the invoice (a credit memo, or a payment
    not read yet)."""
    (placement,) = await matcher.place(placement_input("70", 40_000, total=40_000))
    await matcher.pay(qbo_payment("200", [], unapplied=30_000))
    (decision,) = await matcher.invoice(
        qbo_invoice(
            "70", 20_000, total=40_000, version="1", linked=[("201", pb.LINKED_TXN_TYPE_PAYMENT)]
        )
    )
    assert outcomes([decision]) == ["PAUSED_UNAPPLIED_PAYMENT"]
    after = await matcher.get(placement.placement_id)
    assert (status_name(after), after.balance.minor_units) == ("PAUSED_PENDING_REVIEW", 20_000)


async def test_currency_mismatch_pauses_pending_review(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    (decision,) = await matcher.pay(qbo_payment("163", [("70", 10_000)], currency="CAD"))
    assert outcomes([decision]) == ["PAUSED_CURRENCY_MISMATCH"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "PAUSED_PENDING_REVIEW"
    assert after.balance.minor_units == 10_000
    assert "CAD" in after.review_reason
    assert "USD" in after.review_reason
    assert await matcher.outbox() == [("pause", "paused_pending_review", 10_000)]


async def test_multi_invoice_payment_decides_per_linked_invoice(matcher: Matcher) -> None:
    a, b = await matcher.place(placement_input("70", 10_000), placement_input("71", 5_000))
    decisions = await matcher.pay(
        qbo_payment("300", [("70", 10_000), ("71", 2_000), ("99", 1_500)])
    )
    assert [(d.invoice_id, o) for d, o in zip(decisions, outcomes(decisions), strict=True)] == [
        ("70", "RESOLVED_OUT_OF_BAND"),
        ("71", "PARTIAL_PAYMENT"),
        ("99", "NO_PLACEMENT"),
    ]
    assert decisions[2].placement_id == ""
    assert status_name(await matcher.get(a.placement_id)) == "RESOLVED_OUT_OF_BAND"
    assert (await matcher.get(b.placement_id)).balance.minor_units == 3_000


async def test_credit_memo_applied_closes_with_a_credit_memo_reason(matcher: Matcher) -> None:
    full, part = await matcher.place(placement_input("70", 10_000), placement_input("71", 5_000))
    # QBO records applying a credit memo as a zero-total payment linking both.
    (decision,) = await matcher.pay(
        qbo_payment("400", [("70", 10_000)], credit_memos=[("52", 10_000)], total=0)
    )
    assert outcomes([decision]) == ["CLOSED_BALANCE_ZERO"]
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_STOP
    closed = await matcher.get(full.placement_id)
    assert status_name(closed) == "CLOSED"
    assert "credit memo 52" in closed.resolution_reason
    assert closed.resolution_reason != "paid out-of-band"

    (partial,) = await matcher.pay(
        qbo_payment("401", [("71", 2_000)], credit_memos=[("53", 2_000)], total=0)
    )
    assert outcomes([partial]) == ["BALANCE_UPDATED"]
    assert "credit memo 53" in partial.detail
    assert (await matcher.get(part.placement_id)).balance.minor_units == 3_000


async def test_payment_for_unplaced_invoice_is_recorded_only(matcher: Matcher) -> None:
    await matcher.place(placement_input("70", 10_000))
    (decision,) = await matcher.pay(qbo_payment("163", [("12", 10_000)]))
    assert outcomes([decision]) == ["NO_PLACEMENT"]
    assert await matcher.outbox() == []


async def test_payment_older_than_the_placement_is_already_in_its_balance(
    matcher: Matcher,
) -> None:
    """An invoice placed with 60.00 left after an earlier 40.00 payment (which the placed
    invoice version links): a CDC replay of that payment must not take 40.00 off again."""
    now = datetime.now(UTC)
    (placement,) = await matcher.place(
        placement_input(
            "70", 6_000, total=10_000, updated=now - timedelta(days=1), linked_payments=["90"]
        )
    )
    old = qbo_payment(
        "90", [("70", 4_000)], created=now - timedelta(days=3), updated=now - timedelta(days=3)
    )
    assert outcomes(await matcher.pay(old, pb.CHANGE_SOURCE_CDC)) == ["DUPLICATE_NO_CHANGE"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 6_000
