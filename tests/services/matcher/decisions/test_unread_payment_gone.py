"""A payment an invoice version showed before the payment was read, then voided or deleted
before it was read, without a database (docs/matching.md, "A payment gone before it was
read").

The invoice version that showed the payment resolved the placement; the payment's removal,
read first as voided, gives the money back and asks a human. The next invoice version no
longer shows the payment, and its balance is back up by the same amount: that rise is the
same money and must not be counted a second time. Found by the convergence soak (a 900.00
invoice ended owing 1,800.00 in the run with perfect webhooks).
"""

from __future__ import annotations

from itertools import permutations

import pytest

from services.matcher.domain import (
    EntityState,
    PaymentIn,
)
from tests.helpers.one_invoice import Fact, invoice, payment, play

TOTAL = 90_000


@pytest.mark.parametrize("second", [1, 2], ids=["same second", "a second later"])
def test_a_payment_voided_before_it_was_read_is_given_back_once(second: int) -> None:
    """Payment 6 pays the invoice in full and is voided; the books end owing 900.00. Every
    order of the four reads (the payment active may also never be read) ends owing 900.00,
    never 1,800.00."""
    facts: dict[str, Fact] = {
        "paid": payment("6", TOTAL, second=1),
        "invoice paid": invoice("3", TOTAL, 0, ("6",), 1),
        "voided": payment("6", TOTAL, second=second, state=EntityState.VOIDED),
        "invoice owed again": invoice("4", TOTAL, TOTAL, (), second),
    }
    for order in permutations(facts):
        for read in (list(order), [k for k in order if k != "paid"]):
            status, balance = play(TOTAL, [facts[k] for k in read])
            assert balance == TOTAL, (read, status, balance)


def test_one_of_two_unread_payments_voided_leaves_the_other_counted() -> None:
    """The invoice version shows two payments not read yet (400.00 and 500.00: paid in
    full); the 400.00 one is then voided before it was read. The next version shows only
    the 500.00 one, so 400.00 is owed: not 900.00, and not 1,300.00."""
    status, balance = play(
        TOTAL,
        [
            invoice("3", TOTAL, 0, ("7", "8"), 1),
            payment("7", 40_000, second=2, state=EntityState.VOIDED),
            invoice("4", TOTAL, 40_000, ("8",), 2),
            payment("8", 50_000, second=1),
        ],
    )
    assert balance == 40_000, status


def test_a_payment_the_invoice_no_longer_showed_gives_nothing_back() -> None:
    """Payment 7 (900.00, never read) pays the invoice in full and is deleted; payment 8
    then pays it in full. The matcher reads the invoice paid by 7 (resolved out of band),
    then the invoice paid by 8 (still paid: nothing to count), then 7's deletion: that
    version already showed 7 gone, so nothing is owed again, not 900.00. Every order of the
    reads ends owing nothing, as the books say."""
    facts: dict[str, Fact] = {
        "invoice paid by 7": invoice("1", TOTAL, 0, ("7",), 1),
        "7 deleted": PaymentIn("7", "", EntityState.DELETED, "USD", 0, 0, "", (), None, None),
        "invoice paid by 8": invoice("3", TOTAL, 0, ("8",), 3),
        "8 paid": payment("8", TOTAL, second=3),
    }
    for order in permutations(facts):
        status, balance = play(TOTAL, [facts[k] for k in order])
        assert balance == 0, (order, status)
