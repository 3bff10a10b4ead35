"""``ApplyAccountingCredit``: a credit (a Xero credit note, a credit memo) allocated to
invoices, as the decision table's fact.

The table already knows credits: QBO applies a credit memo to an invoice through a payment
of no money whose lines are the invoice and the memo, and such a payment closes the
placement (or lowers its balance) without resolving it out of band. A credit allocated on
its own is the same fact, so it is read as that payment: its allocations are the invoice
lines, one line draws the credit for their sum, and no money moves (total and unapplied
0). It is kept as a payment seen under ``credit:<credit id>``, so a credit never
overwrites a payment of the same company with the same id, and an edited, voided or
deleted credit is decided exactly as an edited, voided or deleted memo payment.
"""

from __future__ import annotations

from aicollect.errors import InvalidArgument
from aicollect.matching.v1 import matching_service_pb2 as pb
from services.matcher.convert import (
    STATE_FROM_PB,
    _enum,
    _sequence,
    _source,
    _time,
    books_in,
    money,
    required_id,
)
from services.matcher.domain import EntityState, LinkType, PaymentIn, PaymentLineIn, Source

# The prefix of a credit's id among the payments seen of its company.
CREDIT_ID_PREFIX = "credit:"


def credit_in(
    request: pb.ApplyAccountingCreditRequest,
) -> tuple[tuple[str, str, str], PaymentIn, Source]:
    """The request's books, the credit as the payment the table decides, and its source."""
    books = books_in(request)
    if not request.HasField("credit"):
        raise InvalidArgument("credit is required", field="credit")
    source = _source(request.source, request.source_event_id)
    c = request.credit
    payment_id = CREDIT_ID_PREFIX + required_id(c.credit_id, "credit.credit_id")
    state: EntityState = _enum(c.state, STATE_FROM_PB, "credit.state")
    sequence = _sequence(c.version_sequence, "credit.version_sequence")
    created = _time(c, "create_time", "credit.create_time")
    updated = _time(c, "last_updated_time", "credit.last_updated_time")
    customer = c.customer_id.strip()
    if state is EntityState.DELETED:
        deleted = PaymentIn(
            payment_id,
            c.version.strip(),
            state,
            "",
            0,
            0,
            customer,
            (),
            created,
            updated,
            version_sequence=sequence,
        )
        return books, deleted, source
    version = required_id(c.version, "credit.version")
    currency = ""
    lines: list[PaymentLineIn] = []
    for i, allocation in enumerate(c.allocations):
        prefix = f"credit.allocations[{i}]"
        invoice_id = required_id(allocation.invoice_id, f"{prefix}.invoice_id")
        amount = money(
            allocation.amount,
            f"{prefix}.amount",
            present=allocation.HasField("amount"),
            positive=True,
        )
        if currency and amount.currency != currency:
            raise InvalidArgument(
                f"{prefix}.amount.currency_code must be the credit's currency ({currency})",
                field=f"{prefix}.amount.currency_code",
            )
        currency = amount.currency
        lines.append(PaymentLineIn(invoice_id, LinkType.INVOICE, amount.minor_units))
    if lines:
        drawn = sum(line.amount for line in lines)
        lines.append(PaymentLineIn(c.credit_id.strip(), LinkType.CREDIT_MEMO, drawn))
    payment = PaymentIn(
        payment_id=payment_id,
        version=version,
        state=state,
        currency=currency,
        total=0,
        unapplied=0,
        customer_id=customer,
        lines=tuple(lines),
        create_time=created,
        last_updated=updated,
        version_sequence=sequence,
    )
    return books, payment, source
