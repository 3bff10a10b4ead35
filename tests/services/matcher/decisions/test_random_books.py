"""Random bookkeeping on one invoice, read at random moments, then a poll: the balance the
matcher ends with is the books' balance, without a database.

The books change one step at a time (a payment recorded, edited, voided or deleted; money or
a credit), each step at its own second, and each step makes a new version of the payment
it touched and of the invoice. The matcher reads some of those versions as they were at
their moment (a webhook fetch reads the books as they are then; many are lost), in time
order, and finally a poll reads every payment and the invoice as they finally are. Whatever
was read along the way, the placement must then owe what the books say: the convergence
test (tests/e2e/test_convergence.py) asks the same of the whole pipeline, a few dozen times;
this asks it of the table thousands of times a second. Steps within one second are left to
the read-order tests. One difference is allowed, and only as less owed: a payment edited up
read while the matcher holds the invoice version of the same step, which it cannot tell
from one made just before the edit (docs/matching.md, "A payment's edit the invoice version
already shows", still open).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from services.matcher.domain import (
    EntityState,
    InvoiceIn,
    LinkedTxnIn,
    LinkType,
    PaymentIn,
    PaymentLineIn,
)
from tests.helpers.histories import EXAMPLES, TABLE, balances
from tests.helpers.table import START, Books, placement

PAYMENTS = ("a", "b", "c")


@dataclass(frozen=True)
class Version:
    """A payment as the books hold it after a step."""

    token: int
    amount: int
    credit: bool
    state: EntityState
    created: int  # the second it was recorded
    made: int  # the second of this version


@dataclass(frozen=True)
class Moment:
    """The books after one step: every payment, and which one the step touched."""

    payments: dict[str, Version]
    touched: str
    second: int  # when the step was made: the touched payment's and the invoice's time


def _balance(total: int, payments: dict[str, Version]) -> int:
    return total - sum(v.amount for v in payments.values() if v.state is EntityState.ACTIVE)


@st.composite
def bookkeeping(draw: st.DrawFn) -> tuple[int, list[Moment]]:
    total = draw(balances)
    payments: dict[str, Version] = {}
    moments: list[Moment] = []
    for second in range(1, draw(st.integers(min_value=1, max_value=7)) + 1):
        pid = draw(st.sampled_from(PAYMENTS))
        old = payments.get(pid)
        room = _balance(total, payments) + (
            old.amount if old and old.state is EntityState.ACTIVE else 0
        )
        if old is None:
            amount = draw(st.integers(min_value=1, max_value=max(1, room // 500))) * 500
            if amount > room:
                continue
            new = Version(0, amount, draw(st.booleans()), EntityState.ACTIVE, second, second)
        elif old.state is not EntityState.ACTIVE:
            continue  # a voided or deleted payment stays so
        else:
            kind = draw(st.sampled_from(["edit", "void", "delete"]))
            if kind == "edit":
                amount = draw(st.integers(min_value=1, max_value=max(1, room // 500))) * 500
                if amount > room or amount == old.amount:
                    continue
                new = replace(old, token=old.token + 1, amount=amount, made=second)
            else:
                state = EntityState.VOIDED if kind == "void" else EntityState.DELETED
                new = replace(old, token=old.token + 1, state=state, made=second)
        payments = {**payments, pid: new}
        moments.append(Moment(payments, pid, second))
    return total, moments


def _payment(pid: str, v: Version) -> PaymentIn:
    if v.state is EntityState.DELETED:
        return PaymentIn(pid, "", EntityState.DELETED, "USD", 0, 0, "", (), None, None)
    created = START + timedelta(seconds=v.created)
    made = START + timedelta(seconds=v.made)
    if v.state is EntityState.VOIDED:
        return PaymentIn(pid, str(v.token), v.state, "USD", 0, 0, "c1", (), created, made)
    lines = [PaymentLineIn("i1", LinkType.INVOICE, v.amount)]
    if v.credit:
        lines.append(PaymentLineIn(f"m{pid}", LinkType.CREDIT_MEMO, v.amount))
    total = 0 if v.credit else v.amount
    return PaymentIn(pid, str(v.token), v.state, "USD", total, 0, "c1", tuple(lines), created, made)


def _invoice(total: int, n: int, moment: Moment) -> InvoiceIn:
    linked = tuple(
        LinkedTxnIn(pid, LinkType.PAYMENT)
        for pid, v in sorted(moment.payments.items())
        if v.state is EntityState.ACTIVE
    )
    return InvoiceIn(
        "i1",
        str(n + 1),
        EntityState.ACTIVE,
        "USD",
        total,
        _balance(total, moment.payments),
        "i1",
        None,
        "c1",
        START + timedelta(seconds=moment.second),
        linked,
    )


def _poll(moments: list[Moment]) -> list[tuple[int, str]]:
    """The final poll: every payment, then the invoice, as they finally are."""
    last = len(moments) - 1
    return [
        *((last, f"payment {pid}") for pid in sorted(moments[last].payments)),
        (last, "invoice"),
    ]


def _play(total: int, moments: list[Moment], reads: list[tuple[int, str]]) -> tuple[str, int]:
    books = Books()
    books.place(placement("i1", total))
    for n, what in [*reads, *_poll(moments)]:
        if what == "invoice":
            books.invoice(_invoice(total, n, moments[n]))
        else:
            pid = what.removeprefix("payment ")
            books.pay(_payment(pid, moments[n].payments[pid]))
    return books.state("p-i1")


# About one random history in 200 ended owing less than the books before the fixes this
# test found (docs/matching.md): the fixed set is larger than the other properties' 200
# (about 4 s); AICOLLECT_TABLE_EXAMPLES still sets how many are drawn afresh.
BOOKS = settings(TABLE, max_examples=EXAMPLES if "AICOLLECT_TABLE_EXAMPLES" in os.environ else 1000)


@BOOKS
@given(books=bookkeeping(), data=st.data())
def test_reads_at_random_moments_then_a_poll_owe_what_the_books_say(
    books: tuple[int, list[Moment]], data: st.DataObject
) -> None:
    total, moments = books
    if not moments:
        return
    reads: list[tuple[int, str]] = []
    for n, moment in enumerate(moments):
        seen = data.draw(
            st.sampled_from(["none", "payment", "invoice", "payment, invoice", "invoice, payment"])
        )
        for what in seen.split(", "):
            if what == "payment":
                reads.append((n, f"payment {moment.touched}"))
            elif what == "invoice":
                reads.append((n, "invoice"))
    status, balance = _play(total, moments, reads)
    owed = _balance(total, moments[-1].payments)
    # Never more than the books say: a debtor is never dunned for money paid.
    assert balance <= owed, (total, moments, reads, status)
    if not _edit_up_read_after_its_invoice(moments, reads):
        assert balance == owed, (total, moments, reads, status)


def _edit_up_read_after_its_invoice(moments: list[Moment], reads: list[tuple[int, str]]) -> bool:
    """Whether the matcher reads a payment's edit to more money than the version it read
    before while the invoice version it holds is the one that edit's step made. The two
    share a second, so the table cannot tell whether that version already shows the edit:
    it counts the edit, and the placement may owe less than the books say, never more
    (docs/matching.md, "A payment's edit the invoice version already shows", still open)."""
    held: int | None = None  # the step whose invoice version the matcher holds
    read: dict[str, Version] = {}  # the version of each payment the matcher holds
    for n, what in [*reads, *_poll(moments)]:
        if what == "invoice":
            held = n if held is None else max(held, n)  # an older version changes nothing
            continue
        pid = what.removeprefix("payment ")
        version = moments[n].payments[pid]
        before = read.get(pid)
        if before is not None and version.token <= before.token:
            continue  # the same version again, or an older one: nothing changes
        if (
            before is not None
            and held is not None
            and before.state is EntityState.ACTIVE
            and version.state is EntityState.ACTIVE
            and version.amount > before.amount
            and version.made == moments[held].second
        ):
            return True
        read[pid] = version
    return False
