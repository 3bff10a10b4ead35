"""QBO JSON -> the matcher's contract messages. Pure functions, no I/O.

The one place that knows QBO's JSON shapes (``Invoice``, ``Customer``, ``Payment``,
deleted-entity stubs) and turns them into ``PlacementInput``, ``AccountingInvoice``,
``AccountingPayment`` and ``DebtorContact``: the version is the ``SyncToken``, its order
(``version_sequence``) the token as an integer. Money becomes integer minor units through
``Decimal`` (a JSON number is read through its shortest ``repr``, which is exact for any
amount QBO writes), never through float arithmetic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, tzinfo
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from aicollect.currency import exponent
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.convert import timestamp
from aicollect.type.v1.money_pb2 import Money
from services.integration.providers.base import InvoiceFacts

Json = Mapping[str, Any]

DEFAULT_CURRENCY = "USD"

_CURRENCY = re.compile(r"[A-Z]{3}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class MappingError(ValueError):
    """A QBO value that cannot be read (an amount that is not a number, a bad date)."""


# -- scalars ------------------------------------------------------------------------------


def to_minor_units(value: object, currency: str) -> int:
    """A QBO amount (JSON number, string or Decimal) in the currency's minor units.

    Amounts with more decimals than the currency has are rounded half up (QBO does not
    write such amounts; this only keeps a malformed one from failing a whole page).
    """
    if value is None:
        return 0
    if isinstance(value, bool):
        raise MappingError(f"not an amount: {value!r}")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        amount = Decimal(repr(value))  # the shortest repr is the exact decimal QBO wrote
    elif isinstance(value, Decimal | str):
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation:
            raise MappingError(f"not an amount: {value!r}") from None
    else:
        raise MappingError(f"not an amount: {value!r}")
    if not amount.is_finite():
        raise MappingError(f"not an amount: {value!r}")
    scaled = amount.scaleb(exponent(currency)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)


def money(value: object, currency: str) -> Money:
    return Money(currency_code=currency, minor_units=to_minor_units(value, currency))


def parse_qbo_time(text: str, default_tz: tzinfo = UTC) -> datetime:
    """QBO's times (``2015-07-24T10:38:50.01-07:00``, ``...Z``, or without an offset)."""
    try:
        parsed = datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise MappingError(f"not a QBO time: {text!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=default_tz)


def format_qbo_time(value: datetime) -> str:
    """The form QBO accepts in ``changedSince`` and in query literals, offset kept."""
    return value.isoformat(timespec="milliseconds")


def parse_date(value: object) -> date | None:
    if not isinstance(value, str) or not _DATE.fullmatch(value.strip()):
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _ref(entity: Json, name: str) -> str:
    ref = entity.get(name)
    return _text(ref.get("value")) if isinstance(ref, Mapping) else ""


def _meta_time(entity: Json, name: str = "LastUpdatedTime") -> datetime | None:
    meta = entity.get("MetaData")
    if not isinstance(meta, Mapping) or not isinstance(meta.get(name), str):
        return None
    try:
        return parse_qbo_time(meta[name])
    except MappingError:
        return None


def entity_id(entity: Json) -> str:
    return _text(str(entity.get("Id", "")))


def last_updated(entity: Json) -> datetime | None:
    return _meta_time(entity)


def is_deleted(entity: Json) -> bool:
    """A CDC stub for a deleted entity (``status: Deleted``, only Id and MetaData)."""
    return str(entity.get("status", "")).lower() == "deleted"


def currency_of(entity: Json, default: str = DEFAULT_CURRENCY) -> str:
    code = _ref(entity, "CurrencyRef").upper()
    return code if _CURRENCY.fullmatch(code) else default


def _is_voided(entity: Json, currency: str) -> bool:
    """QBO has no void flag: a voided transaction keeps existing with zeroed amounts and a
    ``PrivateNote`` starting with "Voided" (Intuit's own void responses)."""
    note = _text(entity.get("PrivateNote")).lower()
    return note.startswith("voided") and to_minor_units(entity.get("TotalAmt"), currency) == 0


# -- invoices ------------------------------------------------------------------------------


def invoice_facts(invoice: Json, default_currency: str = DEFAULT_CURRENCY) -> InvoiceFacts:
    currency = currency_of(invoice, default_currency)
    customer = invoice.get("CustomerRef")
    name = _text(customer.get("name")) if isinstance(customer, Mapping) else ""
    return InvoiceFacts(
        invoice_id=entity_id(invoice),
        doc_number=_text(invoice.get("DocNumber")),
        customer_id=_ref(invoice, "CustomerRef"),
        customer_name=name,
        currency=currency,
        total=to_minor_units(invoice.get("TotalAmt"), currency),
        balance=to_minor_units(invoice.get("Balance"), currency),
        due_date=parse_date(invoice.get("DueDate")),
        txn_date=parse_date(invoice.get("TxnDate")),
        voided=_is_voided(invoice, currency),
    )


_LINK_TYPES = {
    "invoice": mpb.LINKED_TXN_TYPE_INVOICE,
    "creditmemo": mpb.LINKED_TXN_TYPE_CREDIT_MEMO,
    "payment": mpb.LINKED_TXN_TYPE_PAYMENT,
    "journalentry": mpb.LINKED_TXN_TYPE_JOURNAL_ENTRY,
}


def link_type(txn_type: object) -> mpb.LinkedTxnType.ValueType:
    """``CreditMemo`` and Intuit's ``CREDIT_MEMO`` spelling alike."""
    key = _text(txn_type).replace("_", "").lower()
    return _LINK_TYPES.get(key, mpb.LINKED_TXN_TYPE_OTHER)


def _linked(entity: Json) -> list[tuple[str, mpb.LinkedTxnType.ValueType]]:
    out = []
    for txn in entity.get("LinkedTxn") or []:
        if isinstance(txn, Mapping) and _text(str(txn.get("TxnId", ""))):
            out.append((_text(str(txn["TxnId"])), link_type(txn.get("TxnType"))))
    return out


def version_sequence(entity: Json) -> int:
    """The order of an entity's version: its ``SyncToken`` (an increasing integer) as a
    number; 0 when it is missing or not a number."""
    token = _text(str(entity.get("SyncToken", "")))
    return int(token) if token.isdigit() and len(token) <= 18 else 0


def _linked_txns(entity: Json) -> list[mpb.LinkedTxn]:
    return [mpb.LinkedTxn(txn_id=i, txn_type=t) for i, t in _linked(entity)]


def qbo_invoice(invoice: Json, default_currency: str = DEFAULT_CURRENCY) -> mpb.AccountingInvoice:
    """An invoice as now known in QBO, for ``ApplyAccountingInvoice`` (deleted stubs too)."""
    invoice_id = entity_id(invoice)
    if is_deleted(invoice):
        return deleted_invoice(invoice_id, last_updated(invoice))
    facts = invoice_facts(invoice, default_currency)
    return mpb.AccountingInvoice(
        invoice_id=invoice_id,
        version=_text(str(invoice.get("SyncToken", ""))),
        version_sequence=version_sequence(invoice),
        doc_number=facts.doc_number,
        total_amount=Money(currency_code=facts.currency, minor_units=facts.total),
        balance=Money(currency_code=facts.currency, minor_units=facts.balance),
        due_date=facts.due_date.isoformat() if facts.due_date else "",
        customer_id=facts.customer_id,
        state=mpb.ENTITY_STATE_VOIDED if facts.voided else mpb.ENTITY_STATE_ACTIVE,
        last_updated_time=timestamp(last_updated(invoice)),
        linked_txns=_linked_txns(invoice),
    )


def deleted_invoice(invoice_id: str, when: datetime | None = None) -> mpb.AccountingInvoice:
    return mpb.AccountingInvoice(
        invoice_id=invoice_id,
        state=mpb.ENTITY_STATE_DELETED,
        last_updated_time=timestamp(when),
    )


# -- customers -----------------------------------------------------------------------------

_PHONES = (
    ("PrimaryPhone", mpb.PHONE_TYPE_PRIMARY),
    ("Mobile", mpb.PHONE_TYPE_MOBILE),
    ("AlternatePhone", mpb.PHONE_TYPE_ALTERNATE),
    ("Fax", mpb.PHONE_TYPE_FAX),
)


def _address(addr: object) -> mpb.PostalAddress | None:
    if not isinstance(addr, Mapping):
        return None
    lines = [_text(addr.get(f"Line{n}")) for n in range(1, 6)]
    out = mpb.PostalAddress(
        lines=[line for line in lines if line],
        city=_text(addr.get("City")),
        region=_text(addr.get("CountrySubDivisionCode")),
        postal_code=_text(addr.get("PostalCode")),
        country=_text(addr.get("Country")),
    )
    return out if out.ByteSize() else None


# What QBO appends to the name of a customer made inactive ("deleted" in its UI).
DELETED_SUFFIX = " (deleted)"


def debtor_contact(customer: Json) -> mpb.DebtorContact:
    """The debtor's contact details from a QBO ``Customer``. An inactive customer keeps the
    name it had: the `` (deleted)`` QBO appends is no part of the debtor's name."""
    name = _text(customer.get("DisplayName"))
    if customer.get("Active") is False and name.endswith(DELETED_SUFFIX):
        name = name.removesuffix(DELETED_SUFFIX)
    email = customer.get("PrimaryEmailAddr")
    phones = []
    for field, kind in _PHONES:
        phone = customer.get(field)
        number = _text(phone.get("FreeFormNumber")) if isinstance(phone, Mapping) else ""
        if number:
            phones.append(mpb.PhoneNumber(type=kind, number=number))
    return mpb.DebtorContact(
        display_name=name,
        company_name=_text(customer.get("CompanyName")),
        given_name=_text(customer.get("GivenName")),
        family_name=_text(customer.get("FamilyName")),
        email=_text(email.get("Address")) if isinstance(email, Mapping) else "",
        phones=phones,
        billing_address=_address(customer.get("BillAddr")),
    )


def contact_from_invoice(invoice: Json) -> mpb.DebtorContact:
    """What the invoice itself says when its customer cannot be read."""
    customer = invoice.get("CustomerRef")
    email = invoice.get("BillEmail")
    return mpb.DebtorContact(
        display_name=_text(customer.get("name")) if isinstance(customer, Mapping) else "",
        email=_text(email.get("Address")) if isinstance(email, Mapping) else "",
        billing_address=_address(invoice.get("BillAddr")),
    )


def placement_input(
    invoice: Json,
    customer: Json | None = None,
    default_currency: str = DEFAULT_CURRENCY,
    *,
    facts: InvoiceFacts | None = None,
    debtor: mpb.DebtorContact | None = None,
) -> mpb.PlacementInput:
    """One overdue invoice to place, with its customer's contact details (``debtor`` when
    already mapped; without either, what the invoice itself says)."""
    if facts is None:
        facts = invoice_facts(invoice, default_currency)
    if debtor is None:
        debtor = debtor_contact(customer) if customer is not None else contact_from_invoice(invoice)
    return mpb.PlacementInput(
        invoice_id=facts.invoice_id,
        doc_number=facts.doc_number,
        customer_id=facts.customer_id,
        debtor=debtor,
        total_amount=Money(currency_code=facts.currency, minor_units=facts.total),
        balance=Money(currency_code=facts.currency, minor_units=facts.balance),
        invoice_date=facts.txn_date.isoformat() if facts.txn_date else "",
        due_date=facts.due_date.isoformat() if facts.due_date else "",
        version=_text(str(invoice.get("SyncToken", ""))),
        version_sequence=version_sequence(invoice),
        last_updated_time=timestamp(last_updated(invoice)),
        linked_txns=_linked_txns(invoice),
    )


# -- payments ------------------------------------------------------------------------------


def qbo_payment(payment: Json, default_currency: str = DEFAULT_CURRENCY) -> mpb.AccountingPayment:
    """A payment as now known in QBO, for ``ApplyAccountingPayment`` (voided, deleted too).

    Each line's first linked transaction gets the line's amount (QBO links one transaction
    per payment line; a credit memo drawn on appears as its own line).
    """
    payment_id = entity_id(payment)
    if is_deleted(payment):
        return deleted_payment(payment_id, last_updated(payment))
    currency = currency_of(payment, default_currency)
    lines = []
    for line in payment.get("Line") or []:
        if not isinstance(line, Mapping):
            continue
        linked = _linked(line)
        if not linked:
            continue
        txn_id, kind = linked[0]
        lines.append(
            mpb.PaymentLine(
                linked_txn_id=txn_id,
                linked_txn_type=kind,
                amount=money(line.get("Amount"), currency),
            )
        )
    voided = _is_voided(payment, currency)
    return mpb.AccountingPayment(
        payment_id=payment_id,
        version=_text(str(payment.get("SyncToken", ""))),
        version_sequence=version_sequence(payment),
        txn_date=(d.isoformat() if (d := parse_date(payment.get("TxnDate"))) else ""),
        total_amount=money(payment.get("TotalAmt"), currency),
        unapplied_amount=money(payment.get("UnappliedAmt"), currency),
        customer_id=_ref(payment, "CustomerRef"),
        lines=lines,
        state=mpb.ENTITY_STATE_VOIDED if voided else mpb.ENTITY_STATE_ACTIVE,
        create_time=timestamp(_meta_time(payment, "CreateTime")),
        last_updated_time=timestamp(last_updated(payment)),
    )


def deleted_payment(payment_id: str, when: datetime | None = None) -> mpb.AccountingPayment:
    return mpb.AccountingPayment(
        payment_id=payment_id,
        state=mpb.ENTITY_STATE_DELETED,
        last_updated_time=timestamp(when),
    )


def linked_invoice_ids(entity: Json) -> list[str]:
    """Invoices an entity links to (a credit memo's or payment's ``LinkedTxn``)."""
    ids = [i for i, t in _linked(entity) if t == mpb.LINKED_TXN_TYPE_INVOICE]
    for line in entity.get("Line") or []:
        if isinstance(line, Mapping):
            ids.extend(i for i, t in _linked(line) if t == mpb.LINKED_TXN_TYPE_INVOICE)
    return list(dict.fromkeys(ids))
