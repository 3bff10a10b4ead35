"""ApplyAccountingInvoice: QBO's Invoice.Balance is the truth of what is owed."""

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

PAYMENT = pb.LINKED_TXN_TYPE_PAYMENT
CREDIT_MEMO = pb.LINKED_TXN_TYPE_CREDIT_MEMO
JOURNAL = pb.LINKED_TXN_TYPE_JOURNAL_ENTRY


async def test_credit_memo_drops_balance_to_zero_closes_and_stops(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    (decision,) = await matcher.invoice(qbo_invoice("70", 0, linked=[("52", CREDIT_MEMO)]))
    assert outcomes([decision]) == ["CLOSED_BALANCE_ZERO"]
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_STOP
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "CLOSED"
    assert "credit memo 52" in after.resolution_reason
    assert after.resolving_payment_id == ""
    assert await matcher.outbox() == [("stop", "closed", 0)]


async def test_write_off_closes_with_what_reduced_it(matcher: Matcher) -> None:
    written_off, unexplained = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    await matcher.invoice(qbo_invoice("70", 0, linked=[("9", JOURNAL)]))
    await matcher.invoice(qbo_invoice("71", 0))
    first = await matcher.get(written_off.placement_id)
    second = await matcher.get(unexplained.placement_id)
    assert status_name(first) == "CLOSED"
    assert "journal entry 9 (a write-off or another adjustment)" in first.resolution_reason
    assert status_name(second) == "CLOSED"
    assert "without a linked payment" in second.resolution_reason


async def test_partial_credit_memo_updates_the_balance(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    (decision,) = await matcher.invoice(qbo_invoice("70", 7_500, linked=[("52", CREDIT_MEMO)]))
    assert outcomes([decision]) == ["BALANCE_UPDATED"]
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_BALANCE_CHANGED
    after = await matcher.get(placement.placement_id)
    assert (status_name(after), after.balance.minor_units) == ("ACTIVE", 7_500)


async def test_invoice_edited_upwards_follows_qbo(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    (decision,) = await matcher.invoice(qbo_invoice("70", 12_000, total=12_000))
    assert outcomes([decision]) == ["BALANCE_UPDATED"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 12_000


async def test_voided_or_deleted_invoice_pauses_pending_review(matcher: Matcher) -> None:
    voided, deleted = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    (first,) = await matcher.invoice(qbo_invoice("70", 0, total=0, state=pb.ENTITY_STATE_VOIDED))
    (second,) = await matcher.invoice(
        pb.AccountingInvoice(invoice_id="71", state=pb.ENTITY_STATE_DELETED)
    )
    assert outcomes([first, second]) == ["PAUSED_INVOICE_VOIDED", "PAUSED_INVOICE_VOIDED"]
    for placement, word in ((voided, "voided"), (deleted, "deleted")):
        after = await matcher.get(placement.placement_id)
        assert status_name(after) == "PAUSED_PENDING_REVIEW"
        assert word in after.review_reason
        assert after.balance.minor_units == 10_000
    assert [kind for kind, _, _ in await matcher.outbox()] == ["pause", "pause"]
    # Replays change nothing.
    again = await matcher.invoice(
        pb.AccountingInvoice(invoice_id="71", state=pb.ENTITY_STATE_DELETED)
    )
    assert outcomes(again) == ["DUPLICATE_NO_CHANGE"]


async def test_invoice_currency_change_pauses(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    (decision,) = await matcher.invoice(qbo_invoice("70", 10_000, currency="EUR"))
    assert outcomes([decision]) == ["PAUSED_CURRENCY_MISMATCH"]
    assert status_name(await matcher.get(placement.placement_id)) == "PAUSED_PENDING_REVIEW"


async def test_same_or_older_invoice_version_changes_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.invoice(qbo_invoice("70", 8_000, version="3"))
    assert outcomes(await matcher.invoice(qbo_invoice("70", 8_000, version="3"))) == [
        "DUPLICATE_NO_CHANGE"
    ]
    assert outcomes(await matcher.invoice(qbo_invoice("70", 1_000, version="2"))) == [
        "DUPLICATE_NO_CHANGE"
    ]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 8_000


async def test_invoice_without_placement(matcher: Matcher) -> None:
    (decision,) = await matcher.invoice(qbo_invoice("404", 0))
    assert outcomes([decision]) == ["NO_PLACEMENT"]
    assert decision.placement_id == ""


async def test_payment_then_invoice_counts_the_payment_once(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("163", [("70", 4_000)]))
    (decision,) = await matcher.invoice(qbo_invoice("70", 6_000, linked=[("163", PAYMENT)]))
    assert outcomes([decision]) == ["DUPLICATE_NO_CHANGE"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 6_000


async def test_invoice_then_payment_ends_where_payment_then_invoice_ends(
    matcher: Matcher,
) -> None:
    """Webhooks arrive in any order: the invoice read first already shows the payment."""
    partial, full = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    await matcher.invoice(qbo_invoice("70", 6_000, linked=[("163", PAYMENT)]))
    await matcher.invoice(qbo_invoice("71", 0, linked=[("164", PAYMENT)]))
    assert (await matcher.get(partial.placement_id)).balance.minor_units == 6_000
    resolved = await matcher.get(full.placement_id)
    assert status_name(resolved) == "RESOLVED_OUT_OF_BAND"
    assert resolved.resolution_reason == "paid out-of-band"
    assert resolved.resolving_payment_id == "164"

    assert outcomes(await matcher.pay(qbo_payment("163", [("70", 4_000)]))) == [
        "DUPLICATE_NO_CHANGE"
    ]
    assert outcomes(await matcher.pay(qbo_payment("164", [("71", 10_000)]))) == [
        "DUPLICATE_NO_CHANGE"
    ]
    assert (await matcher.get(partial.placement_id)).balance.minor_units == 6_000
    assert status_name(await matcher.get(full.placement_id)) == "RESOLVED_OUT_OF_BAND"
    # And a later edit of the payment still applies only the difference.
    (edit,) = await matcher.pay(qbo_payment("163", [("70", 5_000)], version="1"))
    assert outcomes([edit]) == ["EDIT_DIFFERENCE_APPLIED"]
    assert (await matcher.get(partial.placement_id)).balance.minor_units == 5_000


async def test_invoice_first_credit_memo_payment_is_reclassified_as_closed(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.invoice(qbo_invoice("70", 0, linked=[("400", PAYMENT), ("52", CREDIT_MEMO)]))
    await matcher.pay(qbo_payment("400", [("70", 10_000)], credit_memos=[("52", 10_000)], total=0))
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "CLOSED"
    assert "credit memo 52" in after.resolution_reason
    assert [kind for kind, _, _ in await matcher.outbox()] == ["stop"]


async def test_invoice_shows_the_mirror_of_a_portal_payment_first(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    now = datetime.now(UTC)
    await matcher.portal(placement.placement_id, "pp-1", 4_000, when=now)
    (decision,) = await matcher.invoice(
        qbo_invoice("70", 6_000, linked=[("500", PAYMENT)], updated=now + timedelta(minutes=2))
    )
    assert outcomes([decision]) == ["MIRRORS_PORTAL_PAYMENT"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 6_000
    (mirror,) = await matcher.pay(qbo_payment("500", [("70", 4_000)], created=now))
    assert outcomes([mirror]) == ["MIRRORS_PORTAL_PAYMENT"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 6_000


async def test_invoice_reopened_after_resolution_flags_review(matcher: Matcher) -> None:
    """QBO no longer links the resolving payment (voided; the invoice webhook came first)."""
    (placement,) = await matcher.place(placement_input("70", 10_000))
    paid = datetime.now(UTC) - timedelta(minutes=10)
    await matcher.pay(qbo_payment("163", [("70", 10_000)], created=paid, updated=paid))
    (decision,) = await matcher.invoice(qbo_invoice("70", 10_000, version="2"))
    assert outcomes([decision]) == ["FLAGGED_FOR_REVIEW"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "NEEDS_REVIEW"
    assert "163" in after.review_reason
    assert after.balance.minor_units == 10_000
    voided = qbo_payment("163", [], total=0, version="1", state=pb.ENTITY_STATE_VOIDED)
    assert outcomes(await matcher.pay(voided)) == ["DUPLICATE_NO_CHANGE"]
    assert [kind for kind, _, _ in await matcher.outbox()] == ["stop", "pause"]


async def test_invoice_read_before_a_payment_does_not_undo_it(matcher: Matcher) -> None:
    """An invoice version older than a payment we applied does not show it yet."""
    (placement,) = await matcher.place(placement_input("70", 10_000))
    now = datetime.now(UTC)
    await matcher.pay(qbo_payment("163", [("70", 4_000)], updated=now))
    (decision,) = await matcher.invoice(
        qbo_invoice("70", 10_000, version="1", updated=now - timedelta(minutes=1))
    )
    assert outcomes([decision]) == ["DUPLICATE_NO_CHANGE"]
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 6_000
