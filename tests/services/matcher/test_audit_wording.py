"""Audit wording says what happened: a credit memo closure is not called a payment, a
deleted invoice is not called voided, a journal entry is not asserted to be a write-off."""

from __future__ import annotations

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import (
    Matcher,
    outcomes,
    placement_input,
    qbo_invoice,
    qbo_payment,
    status_name,
)

VOIDED = pb.ENTITY_STATE_VOIDED
DELETED = pb.ENTITY_STATE_DELETED


async def _actions(matcher: Matcher, placement_id: str) -> list[pb.AuditEvent]:
    return [e for e in await matcher.audit(placement_id) if e.action != "placement.created"]


async def test_deleted_invoice_is_audited_as_deleted_not_voided(matcher: Matcher) -> None:
    deleted, voided = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    await matcher.invoice(qbo_invoice("70", 0, state=DELETED, version=""))
    await matcher.invoice(qbo_invoice("71", 0, state=VOIDED, version="2"))

    (event,) = await _actions(matcher, deleted.placement_id)
    assert event.action == "placement.paused_invoice_deleted"
    assert "deleted" in event.reason
    assert "void" not in event.action + event.reason
    (event,) = await _actions(matcher, voided.placement_id)
    assert event.action == "placement.paused_invoice_voided"
    assert "voided" in event.reason


async def test_credit_memo_closure_is_not_called_a_payment(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    (decision,) = await matcher.pay(
        qbo_payment("400", [("70", 10_000)], credit_memos=[("52", 10_000)], total=0)
    )
    assert outcomes([decision]) == ["CLOSED_BALANCE_ZERO"]
    (event,) = await _actions(matcher, placement.placement_id)
    assert event.action == "placement.closed_balance_zero"
    assert event.reason.startswith("credit memo 52 (through QBO payment 400) applied 100.00 USD")
    assert "QBO payment 400 applied" not in event.reason


async def test_voided_credit_memo_application_is_not_called_a_payment(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("400", [("70", 10_000)], credit_memos=[("52", 10_000)], total=0))
    (decision,) = await matcher.pay(qbo_payment("400", state=VOIDED, version="1", total=0))

    assert outcomes([decision]) == ["FLAGGED_FOR_REVIEW"]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "NEEDS_REVIEW"
    assert after.review_reason.startswith(
        "credit memo 52 (through QBO payment 400), applied to invoice 70 after which the "
        "placement was closed, was voided in QBO; 100.00 USD owed again"
    )


async def test_deleted_credit_memo_application_is_not_called_a_payment(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("400", [("70", 10_000)], credit_memos=[("52", 10_000)], total=0))
    await matcher.pay(qbo_payment("400", state=DELETED, version=""))

    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "NEEDS_REVIEW"
    assert after.review_reason.startswith("credit memo 52 (through QBO payment 400), applied")
    assert "was deleted in QBO" in after.review_reason


async def test_credit_memo_unlinked_from_a_closed_invoice_is_not_called_a_payment(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    await matcher.pay(qbo_payment("400", [("70", 10_000)], credit_memos=[("52", 10_000)], total=0))
    await matcher.invoice(qbo_invoice("70", 10_000, version="3"))

    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "NEEDS_REVIEW"
    assert after.review_reason.startswith(
        "the credit memo applied by QBO payment 400 that closed it no longer applies to "
        "invoice 70 in QBO"
    )
