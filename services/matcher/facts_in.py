"""The accounting facts' requests (``UpsertPlacements``, ``ApplyAccountingInvoice``,
``ApplyAccountingPayment``, ``ApplyAccountingCredit``) validated into domain values:
whose books they come from (tenant, provider, company), the provider's ids, and each
version with its order. INVALID_ARGUMENT names the field.

Credits (``credit_in``): the table already knows them. QBO applies a credit memo to an
invoice through a payment of no money whose lines are the invoice and the memo, and such a
payment closes the placement (or lowers its balance) without resolving it out of band. A
credit allocated on its own is the same fact, so it is read as that payment: its
allocations are the invoice lines, one line draws the credit for their sum, and no money
moves (total and unapplied 0). It is kept as a payment seen under ``credit:<credit id>``,
so a credit never overwrites a payment of the same company with the same id, and an
edited, voided or deleted credit is decided exactly as an edited, voided or deleted memo
payment.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.json_format import MessageToDict

from aicollect.errors import InvalidArgument
from aicollect.matching.v1 import matching_service_pb2 as pb
from services.matcher.convert import (
    LINK_FROM_PB,
    MAX_BATCH,
    PROVIDER_FROM_PB,
    STATE_FROM_PB,
    _enum,
    _source,
    _time,
    calendar_date,
    money,
    required_id,
)
from services.matcher.domain import (
    EntityState,
    InvoiceIn,
    LinkedTxnIn,
    LinkType,
    PaymentIn,
    PaymentLineIn,
    PlacementIn,
    Source,
)


def provider_in(value: int, field: str = "provider") -> str:
    """The accounting platform of a request, by its stored name (``qbo``, ``xero``)."""
    provider: str = _enum(value, PROVIDER_FROM_PB, field)
    return provider


def books_in(
    request: pb.UpsertPlacementsRequest
    | pb.ApplyAccountingPaymentRequest
    | pb.ApplyAccountingInvoiceRequest
    | pb.ApplyAccountingCreditRequest
    | pb.ApplyAccountingChangesRequest,
) -> tuple[str, str, str]:
    """Whose books a request's facts come from: (tenant, provider, company id)."""
    tenant = required_id(request.tenant_id, "tenant_id")
    provider = provider_in(request.provider)
    company = required_id(request.company_id, "company_id")
    return tenant, provider, company


def _sequence(value: int, field: str) -> int:
    if value < 0:
        raise InvalidArgument(f"{field} must not be negative", field=field)
    return value


def _linked_txns(txns: Iterable[pb.LinkedTxn], field: str) -> list[LinkedTxnIn]:
    return [
        LinkedTxnIn(
            required_id(txn.txn_id, f"{field}[{i}].txn_id"),
            _enum(txn.txn_type, LINK_FROM_PB, f"{field}[{i}].txn_type"),
        )
        for i, txn in enumerate(txns)
    ]


def placements_in(request: pb.UpsertPlacementsRequest) -> list[PlacementIn]:
    books_in(request)
    if not 1 <= len(request.placements) <= MAX_BATCH:
        raise InvalidArgument(
            f"placements must hold between 1 and {MAX_BATCH} items", field="placements"
        )
    items: list[PlacementIn] = []
    seen: set[str] = set()
    for i, item in enumerate(request.placements):
        prefix = f"placements[{i}]"
        invoice_id = required_id(item.invoice_id, f"{prefix}.invoice_id")
        if invoice_id in seen:
            raise InvalidArgument(
                f"{prefix}.invoice_id {invoice_id} appears twice in the request",
                field=f"{prefix}.invoice_id",
            )
        seen.add(invoice_id)
        total = money(
            item.total_amount, f"{prefix}.total_amount", present=item.HasField("total_amount")
        )
        balance = money(
            item.balance, f"{prefix}.balance", present=item.HasField("balance"), positive=True
        )
        if balance.currency != total.currency:
            raise InvalidArgument(
                f"{prefix}.balance.currency_code must be the total's currency",
                field=f"{prefix}.balance.currency_code",
            )
        due = calendar_date(item.due_date, f"{prefix}.due_date", required=True)
        assert due is not None
        items.append(
            PlacementIn(
                invoice_id=invoice_id,
                doc_number=item.doc_number,
                customer_id=required_id(item.customer_id, f"{prefix}.customer_id"),
                debtor=MessageToDict(item.debtor, preserving_proto_field_name=True),
                total=total,
                balance=balance,
                invoice_date=calendar_date(
                    item.invoice_date, f"{prefix}.invoice_date", required=False
                ),
                due_date=due,
                version=item.version,
                version_sequence=_sequence(item.version_sequence, f"{prefix}.version_sequence"),
                last_updated=_time(item, "last_updated_time", f"{prefix}.last_updated_time"),
                linked_payment_ids=tuple(
                    dict.fromkeys(
                        t.txn_id
                        for t in _linked_txns(item.linked_txns, f"{prefix}.linked_txns")
                        if t.txn_type is LinkType.PAYMENT
                    )
                ),
            )
        )
    return items


def payment_in(
    request: pb.ApplyAccountingPaymentRequest,
) -> tuple[tuple[str, str, str], PaymentIn, Source]:
    books = books_in(request)
    if not request.HasField("payment"):
        raise InvalidArgument("payment is required", field="payment")
    source = _source(request.source, request.source_event_id)
    return books, payment_fields(request.payment), source


def payment_fields(p: pb.AccountingPayment) -> PaymentIn:
    """A payment as the table decides it; INVALID_ARGUMENT names the field."""
    payment_id = required_id(p.payment_id, "payment.payment_id")
    state: EntityState = _enum(p.state, STATE_FROM_PB, "payment.state")
    if state is EntityState.DELETED:
        return PaymentIn(
            payment_id=payment_id,
            version=p.version.strip(),
            version_sequence=_sequence(p.version_sequence, "payment.version_sequence"),
            state=state,
            currency="",
            total=0,
            unapplied=0,
            customer_id=p.customer_id,
            lines=(),
            create_time=_time(p, "create_time", "payment.create_time"),
            last_updated=_time(p, "last_updated_time", "payment.last_updated_time"),
        )
    token = required_id(p.version, "payment.version")
    total = money(p.total_amount, "payment.total_amount", present=p.HasField("total_amount"))
    unapplied = 0
    if p.HasField("unapplied_amount"):
        unapplied_money = money(p.unapplied_amount, "payment.unapplied_amount")
        if unapplied_money.minor_units and unapplied_money.currency != total.currency:
            raise InvalidArgument(
                "payment.unapplied_amount.currency_code must be the payment's currency",
                field="payment.unapplied_amount.currency_code",
            )
        unapplied = unapplied_money.minor_units
    lines: list[PaymentLineIn] = []
    for i, line in enumerate(p.lines):
        prefix = f"payment.lines[{i}]"
        linked = required_id(line.linked_txn_id, f"{prefix}.linked_txn_id")
        kind: LinkType = _enum(line.linked_txn_type, LINK_FROM_PB, f"{prefix}.linked_txn_type")
        amount = money(line.amount, f"{prefix}.amount", present=line.HasField("amount"))
        if amount.currency != total.currency:
            raise InvalidArgument(
                f"{prefix}.amount.currency_code must be the payment's currency",
                field=f"{prefix}.amount.currency_code",
            )
        lines.append(PaymentLineIn(linked, kind, amount.minor_units))
    return PaymentIn(
        payment_id=payment_id,
        version=token,
        version_sequence=_sequence(p.version_sequence, "payment.version_sequence"),
        state=state,
        currency=total.currency,
        total=total.minor_units,
        unapplied=unapplied,
        customer_id=p.customer_id.strip(),
        lines=tuple(lines),
        create_time=_time(p, "create_time", "payment.create_time"),
        last_updated=_time(p, "last_updated_time", "payment.last_updated_time"),
        txn_date=calendar_date(p.txn_date, "payment.txn_date", required=False),
    )


def invoice_in(
    request: pb.ApplyAccountingInvoiceRequest,
) -> tuple[tuple[str, str, str], InvoiceIn, Source]:
    books = books_in(request)
    if not request.HasField("invoice"):
        raise InvalidArgument("invoice is required", field="invoice")
    source = _source(request.source, request.source_event_id)
    return books, invoice_fields(request.invoice), source


def invoice_fields(inv: pb.AccountingInvoice) -> InvoiceIn:
    """An invoice as the table decides it; INVALID_ARGUMENT names the field."""
    invoice_id = required_id(inv.invoice_id, "invoice.invoice_id")
    state: EntityState = _enum(inv.state, STATE_FROM_PB, "invoice.state")
    last_updated = _time(inv, "last_updated_time", "invoice.last_updated_time")
    sequence = _sequence(inv.version_sequence, "invoice.version_sequence")
    if state is EntityState.DELETED:
        return InvoiceIn(
            invoice_id,
            inv.version.strip(),
            state,
            "",
            0,
            0,
            "",
            None,
            "",
            last_updated,
            (),
            version_sequence=sequence,
        )
    token = required_id(inv.version, "invoice.version")
    total = money(inv.total_amount, "invoice.total_amount", present=inv.HasField("total_amount"))
    balance = money(inv.balance, "invoice.balance", present=inv.HasField("balance"))
    if balance.currency != total.currency:
        raise InvalidArgument(
            "invoice.balance.currency_code must be the total's currency",
            field="invoice.balance.currency_code",
        )
    linked = _linked_txns(inv.linked_txns, "invoice.linked_txns")
    return InvoiceIn(
        invoice_id=invoice_id,
        version=token,
        state=state,
        currency=total.currency,
        total=total.minor_units,
        balance=balance.minor_units,
        doc_number=inv.doc_number,
        due_date=calendar_date(inv.due_date, "invoice.due_date", required=False),
        customer_id=inv.customer_id,
        last_updated=last_updated,
        linked=tuple(linked),
        version_sequence=sequence,
    )


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
    return books, credit_fields(request.credit), source


def credit_fields(c: pb.AccountingCredit) -> PaymentIn:
    """A credit as the payment the table decides (see the module's docstring)."""
    payment_id = CREDIT_ID_PREFIX + required_id(c.credit_id, "credit.credit_id")
    state: EntityState = _enum(c.state, STATE_FROM_PB, "credit.state")
    sequence = _sequence(c.version_sequence, "credit.version_sequence")
    created = _time(c, "create_time", "credit.create_time")
    updated = _time(c, "last_updated_time", "credit.last_updated_time")
    customer = c.customer_id.strip()
    if state is EntityState.DELETED:
        return PaymentIn(
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
    return PaymentIn(
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


# A change of ApplyAccountingChanges as the table decides it, or why it is refused.
Change = PaymentIn | InvoiceIn


def changes_in(
    request: pb.ApplyAccountingChangesRequest,
) -> tuple[tuple[str, str, str], list[Change | InvalidArgument], Source]:
    """The request's books and source (INVALID_ARGUMENT fails the whole call), and each
    change as the table decides it, or the INVALID_ARGUMENT that refuses it alone (its
    field named from the request: ``changes[3].payment.payment_id``)."""
    books = books_in(request)
    source = _source(request.source, request.source_event_id)
    if not request.changes:
        raise InvalidArgument("changes must not be empty", field="changes")
    if len(request.changes) > MAX_BATCH:
        raise InvalidArgument(f"at most {MAX_BATCH} changes per call", field="changes")
    out: list[Change | InvalidArgument] = []
    for i, change in enumerate(request.changes):
        prefix = f"changes[{i}]"
        try:
            kind = change.WhichOneof("change")
            if kind == "payment":
                out.append(payment_fields(change.payment))
            elif kind == "invoice":
                out.append(invoice_fields(change.invoice))
            elif kind == "credit":
                out.append(credit_fields(change.credit))
            else:
                raise InvalidArgument(
                    "a payment, an invoice or a credit is required", field="change"
                )
        except InvalidArgument as exc:
            field = exc.field or ""
            out.append(
                InvalidArgument(
                    f"{prefix}.{exc.message}"
                    if exc.message.startswith(field) and field
                    else f"{prefix}: {exc.message}",
                    field=f"{prefix}.{field}" if field else prefix,
                    reason=exc.reason,
                )
            )
    return books, out, source
