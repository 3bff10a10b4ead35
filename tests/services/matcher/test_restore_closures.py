"""RestorePlacement of a wrong closure: a credit memo or a write-off that should not have
closed the placement (docs/restore-procedure.md). The restored placement owes what it owed
before the closure; the causing change stays excluded until QBO changes it again, and a
correction in QBO (the credit or the write-off removed) never counts the amount twice."""

from __future__ import annotations

import pytest

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
JOURNAL = pb.LINKED_TXN_TYPE_JOURNAL_ENTRY


async def _state(matcher: Matcher, placement_id: str) -> tuple[str, int]:
    p = await matcher.get(placement_id)
    return status_name(p), p.balance.minor_units


@pytest.mark.parametrize("invoice_first", [False, True], ids=["payment_first", "invoice_first"])
async def test_wrong_credit_memo_closure_is_restored_and_its_removal_counts_once(
    matcher: Matcher, invoice_first: bool
) -> None:
    (placement,) = await matcher.place(placement_input("70", 6_000, total=6_000))
    pid = placement.placement_id
    # QBO records an applied credit memo as a zero-total payment linking invoice and memo.
    credit = qbo_payment("cm-1", [("70", 6_000)], credit_memos=[("52", 6_000)], total=0)
    await matcher.pay(credit)
    closed = await matcher.get(pid)
    assert status_name(closed) == "CLOSED"
    assert "credit memo 52" in closed.resolution_reason

    restored = await matcher.restore(closed)
    assert (status_name(restored), restored.balance.minor_units) == ("ACTIVE", 6_000)
    assert (await matcher.outbox(pid))[-1] == ("resume", "active", 6_000)
    (entry,) = [e for e in await matcher.audit(pid) if e.action == "placement.restored"]
    assert entry.details["previous_status"] == "closed"
    assert entry.details["excluded_payment_id"] == "cm-1"

    # QBO still shows the credit: the same payment and the invoice echo change nothing.
    assert outcomes(await matcher.pay(credit, pb.CHANGE_SOURCE_CDC)) == ["EXCLUDED_AFTER_RESTORE"]
    await matcher.invoice(qbo_invoice("70", 0, total=6_000, linked=[("cm-1", PAYMENT)]))
    assert await _state(matcher, pid) == ("ACTIVE", 6_000)

    # The bookkeeper removes the credit application, then the memo: 60.00 owed, not 120.00.
    deleted = qbo_payment("cm-1", state=pb.ENTITY_STATE_DELETED, version="1")
    back = qbo_invoice("70", 6_000, total=6_000, version="2")
    for change in (back, deleted) if invoice_first else (deleted, back):
        if change is back:
            await matcher.invoice(back)
        else:
            await matcher.pay(deleted)
        assert await _state(matcher, pid) == ("ACTIVE", 6_000)
    assert [kind for kind, _, _ in await matcher.outbox(pid)] == ["stop", "resume"]


async def test_wrong_write_off_closure_is_restored_and_its_reversal_counts_once(
    matcher: Matcher,
) -> None:
    """The bug found before: restore after an invoice-level write-off, then the bookkeeper
    deletes the write-off, and the placement owed 120.00 for an invoice of 60.00."""
    (placement,) = await matcher.place(placement_input("70", 6_000, total=6_000))
    pid = placement.placement_id
    write_off = qbo_invoice("70", 0, total=6_000, linked=[("J7", JOURNAL)], version="1")
    await matcher.invoice(write_off)
    closed = await matcher.get(pid)
    assert status_name(closed) == "CLOSED"
    assert "journal entry J7" in closed.resolution_reason

    restored = await matcher.restore(closed)
    assert (status_name(restored), restored.balance.minor_units) == ("ACTIVE", 6_000)
    (entry,) = [e for e in await matcher.audit(pid) if e.action == "placement.restored"]
    assert entry.details["excluded_invoice_version"] == "1"
    assert entry.details["excluded_minor_units"] == "6000"

    # The excluded version read again (a duplicate webhook, a poll) changes nothing.
    assert outcomes(await matcher.invoice(write_off, pb.CHANGE_SOURCE_CDC)) == [
        "DUPLICATE_NO_CHANGE"
    ]
    assert await _state(matcher, pid) == ("ACTIVE", 6_000)

    # The bookkeeper deletes the write-off: QBO says 60.00 again, and so do we.
    await matcher.invoice(qbo_invoice("70", 6_000, total=6_000, version="2"))
    assert await _state(matcher, pid) == ("ACTIVE", 6_000)
    # A genuine part payment afterwards counts normally.
    await matcher.pay(qbo_payment("160", [("70", 2_000)]))
    assert await _state(matcher, pid) == ("ACTIVE", 4_000)
    assert [kind for kind, _, _ in await matcher.outbox(pid)] == [
        "stop",
        "resume",
        "balance_changed",
    ]


async def test_a_later_version_that_still_writes_off_is_taken_normally(matcher: Matcher) -> None:
    """The exclusion lasts until QBO changes the invoice again; a new version that still
    shows the write-off is QBO's word and closes the placement again."""
    (placement,) = await matcher.place(placement_input("70", 6_000, total=6_000))
    pid = placement.placement_id
    await matcher.invoice(qbo_invoice("70", 0, total=6_000, linked=[("J7", JOURNAL)]))
    await matcher.restore(await matcher.get(pid))
    await matcher.invoice(qbo_invoice("70", 0, total=6_000, linked=[("J7", JOURNAL)], version="2"))
    assert await _state(matcher, pid) == ("CLOSED", 0)


async def test_part_payment_then_wrong_write_off_restores_what_was_left(matcher: Matcher) -> None:
    """Money paid out of band, then a write-off of the rest: resolved out of band by the
    invoice version. Restored, the write-off's reversal counts once, the payment stays."""
    (placement,) = await matcher.place(placement_input("70", 10_000))
    pid = placement.placement_id
    await matcher.pay(qbo_payment("160", [("70", 4_000)]))
    await matcher.invoice(
        qbo_invoice("70", 0, linked=[("160", PAYMENT), ("J7", JOURNAL)], version="2")
    )
    resolved = await matcher.get(pid)
    assert status_name(resolved) == "RESOLVED_OUT_OF_BAND"
    restored = await matcher.restore(resolved)
    assert (status_name(restored), restored.balance.minor_units) == ("ACTIVE", 6_000)
    await matcher.invoice(qbo_invoice("70", 6_000, linked=[("160", PAYMENT)], version="3"))
    assert await _state(matcher, pid) == ("ACTIVE", 6_000)


async def test_a_credit_memo_closure_known_first_from_the_invoice_restores_the_balance(
    matcher: Matcher,
) -> None:
    """The invoice showed the credit's payment before it was read (taken for money, then
    corrected to closed when read): the restore still gives back what was owed before."""
    (placement,) = await matcher.place(placement_input("70", 6_000, total=6_000))
    pid = placement.placement_id
    await matcher.invoice(qbo_invoice("70", 0, total=6_000, linked=[("cm-1", PAYMENT)]))
    assert (await _state(matcher, pid))[0] == "RESOLVED_OUT_OF_BAND"
    credit = qbo_payment("cm-1", [("70", 6_000)], credit_memos=[("52", 6_000)], total=0)
    await matcher.pay(credit)
    closed = await matcher.get(pid)
    assert status_name(closed) == "CLOSED"
    restored = await matcher.restore(closed)
    assert (status_name(restored), restored.balance.minor_units) == ("ACTIVE", 6_000)
    assert outcomes(await matcher.pay(credit, pb.CHANGE_SOURCE_CDC)) == ["EXCLUDED_AFTER_RESTORE"]
    await matcher.pay(qbo_payment("cm-1", state=pb.ENTITY_STATE_DELETED, version="1"))
    await matcher.invoice(qbo_invoice("70", 6_000, total=6_000, version="2"))
    assert await _state(matcher, pid) == ("ACTIVE", 6_000)
