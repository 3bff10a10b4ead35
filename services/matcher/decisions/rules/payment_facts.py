"""What the rows for a payment's line on a placed invoice share (``payment_line`` and the
modules of its rows: ``payment_held``, ``payment_mirror``, ``payment_counted``).

:class:`PaymentFacts` is the payment as the rules see it; :class:`CountedLine` is its line
on one placement once counted, what the rows after the count decide on. :func:`track_invoice`
keeps the invoice balance the provider shows in step with the line, and :func:`applier` and
:func:`credit_memo_reason` say in the texts who applied the amount: the payment's money or
credit memos.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.matcher.decisions.outcomes import KIND_CREDIT_MEMO
from services.matcher.decisions.rules.common import money, payment_label
from services.matcher.decisions.values import (
    Application,
    Context,
    Ledger,
    PlacementState,
    SeenPayment,
    evolve,
)
from services.matcher.domain import (
    EntityState,
    LinkType,
    PaymentIn,
    Status,
    provider_label,
)


@dataclass(frozen=True)
class PaymentFacts:
    """The payment as the rules see it (a deleted payment keeps what was recorded)."""

    payment: PaymentIn
    provider: str  # whose books the payment is in: "qbo" or "xero", as the texts name them
    currency: str
    amounts: Mapping[str, int]  # qbo invoice id -> amount applied by this version
    previous: Mapping[str, int] | None  # the same for the version applied before, if any
    credit_memo_ids: tuple[str, ...]
    time: datetime | None  # when the payment was made in QBO, for the mirror window
    money: int = 0  # the money applied (total less unapplied) of this or the last version

    @property
    def id(self) -> str:
        return self.payment.payment_id

    @property
    def token(self) -> str:
        return self.payment.version

    @property
    def state(self) -> EntityState:
        return self.payment.state

    @property
    def funded_by_credit(self) -> bool:
        """The invoice lines are paid with credit memos, not money."""
        return bool(self.credit_memo_ids) and self.money <= 0

    @property
    def books(self) -> str:
        """The provider's name ("QBO", "Xero"), for "in QBO" in the texts."""
        return provider_label(self.provider)

    def label(self) -> str:
        """The payment by name: "QBO payment 123", "Xero payment 1f3e..."."""
        return payment_label(self.provider, self.id)

    def describe(self) -> str:
        if self.state is not EntityState.ACTIVE:
            return f"{self.label()} ({self.state.value})"
        return self.label()


def payment_facts(payment: PaymentIn, record: SeenPayment, first_sight: bool) -> PaymentFacts:
    amounts: dict[str, int] = {}
    credit_memos: list[str] = []
    if payment.state is EntityState.ACTIVE:
        for line in payment.lines:
            if line.linked_type is LinkType.INVOICE:
                amounts[line.linked_txn_id] = amounts.get(line.linked_txn_id, 0) + line.amount
            elif line.linked_type is LinkType.CREDIT_MEMO:
                credit_memos.append(line.linked_txn_id)
    deleted = payment.state is EntityState.DELETED
    active = payment.state is EntityState.ACTIVE
    return PaymentFacts(
        payment=payment,
        provider=record.provider,
        currency=record.currency_code if deleted else payment.currency,
        amounts=amounts,
        previous=None if first_sight else dict(record.invoice_amounts),
        # A voided or deleted payment keeps what it was: a credit memo application stays one.
        credit_memo_ids=tuple(dict.fromkeys(credit_memos))
        if active
        else tuple(record.credit_memo_ids),
        time=payment.create_time or record.provider_created_at or payment.last_updated,
        money=payment.total - payment.unapplied
        if active
        else record.total_minor_units - record.unapplied_minor_units,
    )


@dataclass(frozen=True)
class CountedLine:
    """A payment version's line on one placement once counted (and, when it brought more
    than was owed, flagged): what the rows after the count decide on."""

    ledger: Ledger  # the placement and this payment's application as counted
    facts: PaymentFacts
    kind: str  # KIND_PAYMENT, or KIND_CREDIT_MEMO when credit memos pay the line
    amount: int  # what this version applies to the invoice
    prior_amount: int  # what the application held before this version
    delta: int  # what the count changed: > 0 reduces what is owed
    new_balance: int  # what is owed after the count
    status: Status  # the placement's status before this line
    details: dict[str, Any]  # the audit details of the line and its count
    fresh: bool  # the placement had no application of this payment before
    previous: int | None  # what the version applied before applied here, if any
    reflected_already: bool  # a line first read that the invoice balance already reflects
    shown: bool  # an edit the invoice version we hold already shows

    @property
    def removed(self) -> bool:
        """The payment is voided or deleted."""
        return self.facts.state is not EntityState.ACTIVE

    @property
    def edit(self) -> bool:
        """The line changes one counted before (or one the invoice balance reflected)."""
        return not self.fresh or self.reflected_already or self.previous is not None

    @property
    def left(self) -> str:
        """What is owed after the count, as the texts say it."""
        return money(self.ledger.placement, max(0, self.new_balance))


def track_invoice(
    p: PlacementState, app: Application, amount: int, ctx: Context
) -> tuple[PlacementState, Application]:
    """The invoice balance the provider shows follows the line's ``amount``, whatever the
    placement counts of it. The view never falls below 0: the line reflects what it took
    (less than its amount when payments read before, one of them since voided, left no
    room), so an edit, void or deletion of either gives back only what was taken
    (docs/matching.md, "A payment the invoice's balance had no room for")."""
    view = p.invoice_balance_minor_units
    shown = max(0, view - (amount - app.reflected_minor_units))
    p = evolve(p, invoice_balance_minor_units=shown)
    app = evolve(
        app,
        reflected_minor_units=app.reflected_minor_units + view - shown,
        amount_minor_units=amount,
        updated_at=ctx.now,
    )
    return p, app


def applier(facts: PaymentFacts, kind: str) -> str:
    """Who applies the amount: a payment's money, or credit memos (through a QBO payment)."""
    if kind == KIND_CREDIT_MEMO and facts.credit_memo_ids:
        memos = ", ".join(facts.credit_memo_ids)
        return f"credit memo {memos} (through {facts.label()})"
    return facts.describe()


def credit_memo_reason(facts: PaymentFacts, invoice_id: str, *, partial: bool = False) -> str:
    memos = ", ".join(facts.credit_memo_ids)
    what = "reduced" if partial else "reduced to zero"
    return (
        f"invoice {invoice_id}'s balance {what} in {facts.books} by credit memo {memos} "
        f"(applied by {facts.label()}), not by a payment"
    )
