"""A payment read active after it was voided, then another payment, without a database
(docs/matching.md, "A payment the invoice's balance had no room for").

The books: a 10.00 invoice; payment a (5.00) recorded and voided; payment b (10.00)
recorded and voided; the invoice ends owing 10.00. A webhook that fetched payment a before
its void reaches the matcher, then payment b: together 15.00 on a 10.00 invoice. The
matcher's view of the invoice's balance can only fall to 0.00, so it takes 5.00 of payment
b, not 10.00; the voids must give back what was taken (5.00 + 5.00), not 15.00, or the last
invoice version (10.00 owed, nothing linked) looks like a 5.00 drop without a payment.
Found by tests/services/matcher/decisions/test_random_books.py.
"""

from __future__ import annotations

from itertools import permutations

from services.matcher.domain import (
    EntityState,
)
from tests.helpers.one_invoice import Fact, invoice, payment, play

TOTAL = 1_000


def test_two_payments_voided_after_a_stale_read_give_back_what_was_taken() -> None:
    """Every order of the four payment reads, the last invoice version read anywhere among
    them (an older version of a payment read after a newer one changes nothing): the
    placement ends owing 10.00, as the books say, never 5.00 and never more."""
    facts: dict[str, Fact] = {
        "a paid": payment("a", 500, created=1, second=1),
        "a voided": payment("a", 500, created=1, second=2, state=EntityState.VOIDED),
        "b paid": payment("b", 1_000, created=3, second=3),
        "b voided": payment("b", 1_000, created=3, second=4, state=EntityState.VOIDED),
        "invoice owed": invoice("4", TOTAL, TOTAL, (), 4),
    }
    for order in permutations(facts):
        # The poll reads every payment and the invoice as they finally are.
        read = [facts[k] for k in order]
        final = [facts["a voided"], facts["b voided"], facts["invoice owed"]]
        _, balance = play(TOTAL, [*read, *final])
        assert balance == TOTAL, order


def test_a_stale_payment_then_one_that_stays_ends_paid() -> None:
    """Payment a (5.00) read active after it was voided, then payment b (10.00), which
    stands: the invoice is paid. Reading a's void gives back what a took; the invoice
    version that shows b alone says nothing is owed, and the placement follows it."""
    status, balance = play(
        TOTAL,
        [
            payment("a", 500, created=1, second=1),
            payment("b", 1_000, created=3, second=3),
            payment("a", 500, created=1, second=2, state=EntityState.VOIDED),
            invoice("3", TOTAL, 0, ("b",), 3),
        ],
    )
    assert balance == 0, status
