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

from dataclasses import replace
from datetime import timedelta
from itertools import permutations

import pytest

from services.matcher.domain import (
    EntityState,
    LinkType,
    PaymentIn,
    PaymentLineIn,
    Status,
)
from tests.helpers.one_invoice import Fact, invoice, payment, play
from tests.helpers.table import START, Books, placement

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


def test_a_credit_taken_off_an_invoice_then_voided_bills_no_fee_in_any_order() -> None:
    """Found by the soak (2026-11-28): a credit memo cleared the invoice through payment 9,
    then the invoice was voided, which takes the credit off it. Read in the order the
    invoice version first, then payment 9 already without the credit, the drop was taken
    for money paid out of band and never corrected: an out-of-band fee on money never paid,
    for an invoice that no longer exists. Whatever the order, the placement now ends
    stopped with no money counted as paid: waiting for a human, owing what it did, or
    closed by the credit when the credit was read before the void."""
    when = START + timedelta(seconds=1)
    facts: dict[str, Fact] = {
        "invoice cleared": invoice("3", TOTAL, 0, ("9",), 1),
        "credit applied": PaymentIn(
            "9",
            "0",
            EntityState.ACTIVE,
            "USD",
            0,
            0,
            "c1",
            (
                PaymentLineIn("i1", LinkType.INVOICE, TOTAL),
                PaymentLineIn("m8", LinkType.CREDIT_MEMO, TOTAL),
            ),
            when,
            when,
        ),
        "credit taken off": PaymentIn(
            "9", "1", EntityState.ACTIVE, "USD", 0, 0, "c1", (), when, when + timedelta(seconds=1)
        ),
        "invoice voided": replace(invoice("4", TOTAL, 0, (), 2), state=EntityState.VOIDED),
    }
    poll = [facts["credit taken off"], facts["invoice voided"]]
    # Reads see the books as they are when made: any of the first moment's versions in any
    # order, then any of the second's, then the poll.
    before = _reads(["invoice cleared", "credit applied"])
    after = _reads(["credit taken off", "invoice voided"])
    for order in (first + second for first in before for second in after):
        books = Books()
        books.place(placement("i1", TOTAL))
        for fact in [*(facts[k] for k in order), *poll]:
            if isinstance(fact, PaymentIn):
                books.pay(fact)
            else:
                books.invoice(fact)
        p = books.ledgers["p-i1"].placement
        assert p.oob_paid_minor_units == 0, order  # no fee on money never paid
        if p.status == Status.CLOSED.value:
            # The credit read before the void was read: closed by the credit, as the books
            # had it then; a closed placement stays closed.
            continue
        assert p.status in (Status.PAUSED_PENDING_REVIEW.value, Status.NEEDS_REVIEW.value), order
        assert p.balance_minor_units == TOTAL, order


def _reads(names: list[str]) -> list[tuple[str, ...]]:
    """Every order of every subset of ``names``."""
    return [order for n in range(len(names) + 1) for order in permutations(names, n)]
