"""Random histories of QuickBooks-like facts for the pure table (``tests/helpers/table.py``):
the actions (payments, invoice versions, restores, the last fact again), their hypothesis
strategies, and :class:`Player`, which turns them into facts with increasing versions and
times. ``AICOLLECT_TABLE_EXAMPLES`` sets how many examples ``TABLE`` draws (afresh each
time); unset, a fixed derandomized set of 200.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from services.matcher.decisions.outcomes import RESTORABLE
from services.matcher.domain import (
    EntityState,
    InvoiceIn,
    LinkedTxnIn,
    LinkType,
    PaymentIn,
    PaymentLineIn,
    Status,
)
from tests.helpers.table import START, Books, Step

EXAMPLES = int(os.environ.get("AICOLLECT_TABLE_EXAMPLES", "200"))
TABLE = settings(
    max_examples=EXAMPLES,
    derandomize="AICOLLECT_TABLE_EXAMPLES" not in os.environ,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

INVOICES = ("i1", "i2")
PAYMENTS = ("a", "b", "c", "u")


@dataclass(frozen=True)
class Pay:
    payment_id: str
    state: EntityState
    lines: tuple[tuple[str, int], ...]
    credit: bool
    unapplied: int


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    state: EntityState
    balance: int
    linked: tuple[str, ...]


@dataclass(frozen=True)
class Restore:
    invoice_id: str


@dataclass(frozen=True)
class Again:
    """The previous fact delivered once more."""


Action = Pay | Invoice | Restore | Again

amounts = st.integers(min_value=0, max_value=120).map(lambda n: n * 500)
states = st.sampled_from(
    [EntityState.ACTIVE, EntityState.ACTIVE, EntityState.VOIDED, EntityState.DELETED]
)
pays = st.builds(
    Pay,
    st.sampled_from(PAYMENTS),
    states,
    st.lists(st.tuples(st.sampled_from(INVOICES), amounts), max_size=2).map(tuple),
    st.booleans(),
    st.sampled_from([0, 0, 0, 5_000, 30_000, 60_000]),
)
invoices = st.builds(
    Invoice,
    st.sampled_from(INVOICES),
    st.sampled_from([EntityState.ACTIVE] * 6 + [EntityState.VOIDED, EntityState.DELETED]),
    amounts,
    st.lists(st.sampled_from(PAYMENTS), max_size=3, unique=True).map(tuple),
)
actions = st.one_of(
    pays, pays, invoices, st.builds(Restore, st.sampled_from(INVOICES)), st.just(Again())
)
histories = st.lists(actions, max_size=14)
balances = st.integers(min_value=1, max_value=100).map(lambda n: n * 1_000)


class Player:
    """Turns actions into the facts QBO would send, with increasing versions and times."""

    def __init__(self, books: Books) -> None:
        self.books = books
        self.tokens: dict[str, int] = {}
        self.moment = 0
        self.last: PaymentIn | InvoiceIn | None = None

    def _next(self, key: str) -> tuple[str, datetime]:
        self.tokens[key] = self.tokens.get(key, -1) + 1
        self.moment += 1
        return str(self.tokens[key]), START + timedelta(minutes=self.moment)

    def payment(self, action: Pay) -> PaymentIn:
        token, when = self._next(action.payment_id)
        applied = sum(amount for _, amount in action.lines)
        lines = [PaymentLineIn(i, LinkType.INVOICE, amount) for i, amount in action.lines]
        if action.credit and applied:
            lines.append(PaymentLineIn("cm1", LinkType.CREDIT_MEMO, applied))
        total = action.unapplied + (0 if action.credit else applied)
        return PaymentIn(
            payment_id=action.payment_id,
            version=token,
            state=action.state,
            currency="USD",
            total=total,
            unapplied=action.unapplied,
            customer_id="c1",
            lines=tuple(lines),
            create_time=when,
            last_updated=when,
        )

    def invoice(self, action: Invoice, total: int) -> InvoiceIn:
        token, when = self._next(action.invoice_id)
        return InvoiceIn(
            invoice_id=action.invoice_id,
            version=str(int(token) + 1),
            state=action.state,
            currency="USD",
            total=total,
            balance=action.balance,
            doc_number=action.invoice_id,
            due_date=None,
            customer_id="c1",
            last_updated=when,
            linked=tuple(LinkedTxnIn(pid, LinkType.PAYMENT) for pid in action.linked),
        )

    def play(self, action: Action, totals: dict[str, int]) -> Step | None:
        books = self.books
        if isinstance(action, Pay):
            self.last = self.payment(action)
            return books.pay(self.last)
        if isinstance(action, Invoice):
            self.last = self.invoice(action, totals[action.invoice_id])
            return books.invoice(self.last)
        if isinstance(action, Restore):
            pid = f"p-{action.invoice_id}"
            if Status(books.ledgers[pid].placement.status) in RESTORABLE:
                return books.restore(pid)
            return None
        if isinstance(self.last, PaymentIn):
            return books.pay(self.last)
        if isinstance(self.last, InvoiceIn):
            return books.invoice(self.last)
        return None
