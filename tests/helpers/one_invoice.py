"""Facts about one invoice (``i1`` of customer ``c1``, in USD) for short, fixed histories
played through the pure table (``tests/helpers/table.py``): a payment's version, an invoice
version, and the play of a list of them. Times are seconds after ``START``, as QuickBooks
stamps its versions (to the second)."""

from __future__ import annotations

from datetime import timedelta

from services.matcher.domain import (
    EntityState,
    InvoiceIn,
    LinkedTxnIn,
    LinkType,
    PaymentIn,
    PaymentLineIn,
)
from tests.helpers.table import START, Books, placement

Fact = PaymentIn | InvoiceIn


def payment(
    pid: str,
    amount: int,
    *,
    second: int,
    created: int = 1,
    state: EntityState = EntityState.ACTIVE,
    token: str | None = None,
) -> PaymentIn:
    """A version of payment ``pid`` made at ``second``: active, ``amount`` applied to the
    invoice; voided, nothing applied (its token "1" unless given)."""
    active = state is EntityState.ACTIVE
    return PaymentIn(
        pid,
        token if token is not None else ("0" if active else "1"),
        state,
        "USD",
        amount if active else 0,
        0,
        "c1",
        (PaymentLineIn("i1", LinkType.INVOICE, amount),) if active else (),
        START + timedelta(seconds=created),
        START + timedelta(seconds=second),
    )


def invoice(
    token: str, total: int, balance: int, linked: tuple[str, ...], second: int
) -> InvoiceIn:
    """The invoice's version ``token`` made at ``second``, linking the payments ``linked``."""
    return InvoiceIn(
        "i1",
        token,
        EntityState.ACTIVE,
        "USD",
        total,
        balance,
        "i1",
        None,
        "c1",
        START + timedelta(seconds=second),
        tuple(LinkedTxnIn(pid, LinkType.PAYMENT) for pid in linked),
    )


def play(total: int, facts: list[Fact]) -> tuple[str, int]:
    """The placement of an invoice of ``total`` after reading ``facts`` in order: its
    status and balance."""
    books = Books()
    books.place(placement("i1", total))
    for fact in facts:
        if isinstance(fact, PaymentIn):
            books.pay(fact)
        else:
            books.invoice(fact)
    return books.state("p-i1")
