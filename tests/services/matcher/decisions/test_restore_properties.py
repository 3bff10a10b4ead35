"""Restoring a wrong closure, on the pure table (no database): whatever genuine payments
came before, whether the wrong credit or write-off was read from a payment or from the
invoice, in whichever order the bookkeeper's correction is read, the restored placement
ends owing what QBO says, once, and active (the bug found before: 60.00 became 120.00)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.matcher.domain import (
    EntityState,
    InvoiceIn,
    LinkedTxnIn,
    LinkType,
    PaymentIn,
    PaymentLineIn,
    Status,
)
from tests.helpers.table import START, Books, placement

EXAMPLES = int(os.environ.get("AICOLLECT_TABLE_EXAMPLES", "200"))
TABLE = settings(
    max_examples=EXAMPLES,
    derandomize="AICOLLECT_TABLE_EXAMPLES" not in os.environ,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Bookkeeper:
    """Invoice i1 in QBO, its versions and payments, with increasing tokens and times."""

    def __init__(self, books: Books, total: int) -> None:
        self.books = books
        self.total = total
        self.token = 0
        self.minute = 0

    def _when(self) -> datetime:
        self.minute += 1
        return START + timedelta(minutes=self.minute)

    def invoice(self, balance: int, linked: list[str]) -> None:
        self.token += 1
        self.books.invoice(
            InvoiceIn(
                invoice_id="i1",
                version=str(self.token),
                state=EntityState.ACTIVE,
                currency="USD",
                total=self.total,
                balance=balance,
                doc_number="i1",
                due_date=None,
                customer_id="c1",
                last_updated=self._when(),
                linked=tuple(LinkedTxnIn(p, LinkType.PAYMENT) for p in linked),
            )
        )

    def payment(self, payment_id: str, amount: int, *, credit: bool = False) -> None:
        lines = [PaymentLineIn("i1", LinkType.INVOICE, amount)]
        if credit:
            lines.append(PaymentLineIn("cm1", LinkType.CREDIT_MEMO, amount))
        when = self._when()
        self.books.pay(
            PaymentIn(
                payment_id=payment_id,
                version="0",
                state=EntityState.ACTIVE,
                currency="USD",
                total=0 if credit else amount,
                unapplied=0,
                customer_id="c1",
                lines=tuple(lines),
                create_time=when,
                last_updated=when,
            )
        )

    def delete(self, payment_id: str) -> None:
        when = self._when()
        self.books.pay(
            PaymentIn(
                payment_id=payment_id,
                version="9",
                state=EntityState.DELETED,
                currency="USD",
                total=0,
                unapplied=0,
                customer_id="c1",
                lines=(),
                create_time=when,
                last_updated=when,
            )
        )


@TABLE
@given(
    total=st.integers(min_value=2, max_value=200).map(lambda n: n * 500),
    paid_parts=st.lists(st.integers(min_value=1, max_value=20).map(lambda n: n * 100), max_size=3),
    wrong=st.sampled_from(["credit_payment_first", "credit_invoice_first", "write_off"]),
    echo=st.booleans(),
    correction_invoice_first=st.booleans(),
)
def test_a_restored_wrong_closure_then_corrected_owes_what_qbo_says(
    total: int,
    paid_parts: list[int],
    wrong: str,
    echo: bool,
    correction_invoice_first: bool,
) -> None:
    books = Books()
    books.place(placement("i1", total))
    qbo = Bookkeeper(books, total)
    genuine: list[str] = []
    owed = total
    for n, part in enumerate(paid_parts):
        if part >= owed:
            break
        genuine.append(f"g{n}")
        qbo.payment(f"g{n}", part)
        owed -= part
        if echo:
            qbo.invoice(owed, genuine)

    # The wrong fact clears the rest.
    if wrong == "credit_payment_first":
        qbo.payment("cm", owed, credit=True)
        qbo.invoice(0, [*genuine, "cm"])
    elif wrong == "credit_invoice_first":
        qbo.invoice(0, [*genuine, "cm"])
        qbo.payment("cm", owed, credit=True)
    else:
        qbo.invoice(0, genuine)
    status, balance = books.state("p-i1")
    assert (status, balance) in {(Status.CLOSED.value, 0), (Status.RESOLVED_OUT_OF_BAND.value, 0)}

    books.restore("p-i1")
    assert books.state("p-i1") == (Status.ACTIVE.value, owed)

    # The bookkeeper corrects QBO: the credit's application deleted, or the write-off
    # reversed; the invoice owes the rest again.
    def reversed_invoice() -> None:
        qbo.invoice(owed, genuine)

    def credit_deleted() -> None:
        qbo.delete("cm")

    steps: list[Callable[[], None]] = [reversed_invoice]
    if wrong != "write_off":
        steps.insert(1 if correction_invoice_first else 0, credit_deleted)
    for step in steps:
        step()
        assert books.state("p-i1") == (Status.ACTIVE.value, owed)
