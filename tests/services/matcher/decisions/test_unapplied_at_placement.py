"""Unapplied money and a new placement, in either order, without a database.

The unapplied-money rule runs when the payment is read, when a balance falls and when a
placement is created (``rules/unapplied.pause_new_placements``): whichever the matcher
learns of first, the placement ends in the same status, with one PAUSE and the same
review reason.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.matcher.domain import EntityState, EventType, PaymentIn, Status
from tests.helpers.table import START, Books, Step, placement


def _unapplied(amount: int, *, customer: str = "c1", version: str = "0") -> PaymentIn:
    state = EntityState.ACTIVE if version == "0" else EntityState.VOIDED
    return PaymentIn(
        "u1",
        version,
        state,
        "USD",
        amount if state is EntityState.ACTIVE else 0,
        amount if state is EntityState.ACTIVE else 0,
        customer,
        (),
        START,
        START + timedelta(seconds=int(version)),
    )


def _play(place_first: bool, *payments: PaymentIn) -> tuple[Books, list[Step]]:
    books = Books()
    steps: list[Step] = []
    if place_first:
        steps.append(books.place(placement("i1", 10_000)))
    steps.extend(books.pay(p) for p in payments)
    if not place_first:
        steps.append(books.place(placement("i1", 10_000)))
    return books, steps


@pytest.mark.parametrize(
    ("payments", "status"),
    [
        ((_unapplied(10_000),), Status.PAUSED_PENDING_REVIEW),
        ((_unapplied(9_999),), Status.PAUSED_PENDING_REVIEW),  # within the tolerance
        ((_unapplied(9_000),), Status.ACTIVE),
        ((_unapplied(50_000, customer="c2"),), Status.ACTIVE),
    ],
    ids=["covers", "within-tolerance", "less", "another-customer"],
)
def test_either_order_ends_the_same(payments: tuple[PaymentIn, ...], status: Status) -> None:
    ends = []
    for place_first in (True, False):
        books, steps = _play(place_first, *payments)
        p = books.ledgers["p-i1"].placement
        events = [e.type for s in steps for e in s.events]
        ends.append((p.status, p.balance_minor_units, p.review_reason, events))
    assert ends[0] == ends[1]
    assert ends[0][0] == status.value
    assert ends[0][3] == ([EventType.PAUSE] if status is Status.PAUSED_PENDING_REVIEW else [])


def test_money_voided_before_the_placement_pauses_nothing() -> None:
    books, steps = _play(False, _unapplied(10_000), _unapplied(10_000, version="1"))
    assert books.state("p-i1") == (Status.ACTIVE.value, 10_000)
    assert [e for s in steps for e in s.events] == []
