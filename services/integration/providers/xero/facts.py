"""Xero JSON -> accounting facts and the matcher's contract messages. Pure functions.

The one module that knows both Xero's JSON (``Invoice``, ``Payment``, ``CreditNote``,
``Contact``) and the matcher's messages, so that renaming the contract touches only
this file. Choices (``docs/xero.md``):

* The contract's ``version`` is the record's ``UpdatedDateUTC`` in milliseconds since
  the epoch, as decimal text, and ``version_sequence`` the same number (the order the
  matcher compares): Xero has no version counter, and a
  later change always has a later ``UpdatedDateUTC``.
* Deletes are statuses: an invoice, payment or credit note ``DELETED`` is a delete; a
  ``VOIDED`` invoice is voided. A draft or submitted invoice owes nothing yet (balance 0).
* A payment maps to one line on its invoice (Xero applies a payment to one invoice);
  its ``create_time`` is its ``UpdatedDateUTC`` (Xero payments are never edited, only
  deleted).
* An invoice's links: its payments and its allocated overpayments and prepayments are
  *payments* (money the debtor paid: an allocation that clears the invoice is paid out of
  band), its allocated credit notes are credit memos (no money: the placement closes).
* Money is integer minor units through ``Decimal`` (``qbo.mapping.to_minor_units``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.convert import timestamp
from aicollect.type.v1.money_pb2 import Money
from services.integration.providers.base import InvoiceFacts
from services.integration.providers.qbo.mapping import MappingError, money, to_minor_units

Json = Mapping[str, Any]
DEFAULT_CURRENCY = "USD"
_CURRENCY = re.compile(r"[A-Z]{3}")
_MS_DATE = re.compile(r"/Date\((-?\d+)([+-]\d{4})?\)/")
# Xero's ``<Resource>ID`` field per entity the sync reads.
ID_FIELDS = {
    "Invoice": "InvoiceID",
    "Payment": "PaymentID",
    "CreditNote": "CreditNoteID",
    "Contact": "ContactID",
    "Overpayment": "OverpaymentID",
    "Prepayment": "PrepaymentID",
}
OWING = ("AUTHORISED", "PAID")  # statuses of an approved (posted) invoice
# Overpayment and prepayment types of money a contact paid us (``AR...``: older spelling).
RECEIVED_CREDIT = ("RECEIVE-OVERPAYMENT", "RECEIVE-PREPAYMENT", "AROVERPAYMENT", "ARPREPAYMENT")


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


# -- times and dates ------------------------------------------------------------------------


def parse_time(text: str) -> datetime:
    """Xero's instants: ``/Date(1573755038314)/`` (UTC ms, maybe with an offset) or
    ISO-8601 (``UpdatedDateUTCString``, and the high-water marks we store)."""
    found = _MS_DATE.fullmatch(text.strip()) if isinstance(text, str) else None
    if found is not None:
        return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    except ValueError:
        raise MappingError(f"not a Xero time: {str(text)[:40]!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_time(value: datetime) -> str:
    """The form we store (ISO-8601 UTC with milliseconds)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds")


def updated(entity: Json) -> datetime | None:
    for key in ("UpdatedDateUTC", "UpdatedDateUTCString"):
        value = entity.get(key)
        if isinstance(value, str) and value:
            try:
                return parse_time(value)
            except MappingError:
                continue
    return None


def version(entity: Json) -> str:
    """The record's version: ``UpdatedDateUTC`` in epoch milliseconds ("" if unknown)."""
    when = updated(entity)
    return str(int(when.timestamp() * 1000)) if when is not None else ""


def version_sequence(entity: Json) -> int:
    """The order of the record's version: the same milliseconds as a number (0 if unknown)."""
    text = version(entity)
    return int(text) if text else 0


def local_date(entity: Json, name: str) -> date | None:
    """A calendar date (``DueDate``): its ``<name>String`` (``2026-01-01T00:00:00``),
    else the ``/Date(ms+0000)/`` value read as a date, never shifted by our time zone."""
    text = _text(entity.get(f"{name}String"))
    if len(text) >= 10:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            pass
    found = _MS_DATE.fullmatch(_text(entity.get(name)))
    if found is None:
        return None
    return datetime.fromtimestamp(int(found.group(1)) / 1000, UTC).date()


# -- generic -------------------------------------------------------------------------------


def entity_id(entity: Json) -> str:
    for field in ID_FIELDS.values():
        value = _text(entity.get(field))
        if value:
            return value
    return _text(entity.get("Id"))


def is_deleted(entity: Json) -> bool:
    return _text(entity.get("Status")).upper() == "DELETED" or (
        _text(entity.get("status")).lower() == "deleted"  # our own stub for a missing record
    )


def currency_of(entity: Json, default: str = DEFAULT_CURRENCY) -> str:
    code = _text(entity.get("CurrencyCode")).upper()
    if not code and isinstance(entity.get("Invoice"), Mapping):
        code = _text(entity["Invoice"].get("CurrencyCode")).upper()
    return code if _CURRENCY.fullmatch(code) else default


def _contact(entity: Json) -> Json:
    contact = entity.get("Contact")
    return contact if isinstance(contact, Mapping) else {}


# -- invoices ------------------------------------------------------------------------------


def invoice_facts(invoice: Json) -> InvoiceFacts:
    currency = currency_of(invoice)
    status = _text(invoice.get("Status")).upper()
    receivable = _text(invoice.get("Type")).upper() in ("ACCREC", "")
    # A draft, a bill or a voided invoice owes us nothing to collect.
    owing = receivable and status in OWING
    contact = _contact(invoice)
    return InvoiceFacts(
        invoice_id=entity_id(invoice),
        doc_number=_text(invoice.get("InvoiceNumber")),
        customer_id=_text(contact.get("ContactID")),
        customer_name=_text(contact.get("Name")),
        currency=currency,
        total=to_minor_units(invoice.get("Total"), currency),
        balance=to_minor_units(invoice.get("AmountDue"), currency) if owing else 0,
        due_date=local_date(invoice, "DueDate"),
        txn_date=local_date(invoice, "Date"),
        voided=status == "VOIDED",
    )


_LINKS = (
    ("Payments", "PaymentID", mpb.LINKED_TXN_TYPE_PAYMENT),
    ("CreditNotes", "CreditNoteID", mpb.LINKED_TXN_TYPE_CREDIT_MEMO),
    ("Overpayments", "OverpaymentID", mpb.LINKED_TXN_TYPE_PAYMENT),
    ("Prepayments", "PrepaymentID", mpb.LINKED_TXN_TYPE_PAYMENT),
)


def _linked_txns(invoice: Json) -> list[mpb.LinkedTxn]:
    out = []
    for key, id_field, kind in _LINKS:
        for item in invoice.get(key) or []:
            if isinstance(item, Mapping) and _text(item.get(id_field)):
                if key == "Payments" and _text(item.get("Status")).upper() == "DELETED":
                    continue
                out.append(mpb.LinkedTxn(txn_id=_text(item[id_field]), txn_type=kind))
    return out


def deleted_invoice(invoice_id: str, when: datetime | None = None) -> mpb.AccountingInvoice:
    return mpb.AccountingInvoice(
        invoice_id=invoice_id,
        state=mpb.ENTITY_STATE_DELETED,
        last_updated_time=timestamp(when),
    )


def to_invoice(entity: Json) -> mpb.AccountingInvoice:
    """An invoice as now known in Xero, for ``ApplyAccountingInvoice``."""
    invoice_id = entity_id(entity)
    if is_deleted(entity):
        return deleted_invoice(invoice_id, updated(entity))
    facts = invoice_facts(entity)
    return mpb.AccountingInvoice(
        invoice_id=invoice_id,
        version=version(entity),
        version_sequence=version_sequence(entity),
        doc_number=facts.doc_number,
        total_amount=Money(currency_code=facts.currency, minor_units=facts.total),
        balance=Money(currency_code=facts.currency, minor_units=facts.balance),
        due_date=facts.due_date.isoformat() if facts.due_date else "",
        customer_id=facts.customer_id,
        state=mpb.ENTITY_STATE_VOIDED if facts.voided else mpb.ENTITY_STATE_ACTIVE,
        last_updated_time=timestamp(updated(entity)),
        linked_txns=_linked_txns(entity),
    )


# -- payments ------------------------------------------------------------------------------


def deleted_payment(payment_id: str, when: datetime | None = None) -> mpb.AccountingPayment:
    return mpb.AccountingPayment(
        payment_id=payment_id,
        state=mpb.ENTITY_STATE_DELETED,
        last_updated_time=timestamp(when),
    )


def is_credit_payment(entity: Json) -> bool:
    """An overpayment or prepayment (money the contact paid, spent by allocations)."""
    return bool(_text(entity.get("OverpaymentID")) or _text(entity.get("PrepaymentID")))


def to_payment(entity: Json) -> mpb.AccountingPayment:
    """A payment as now known in Xero, for ``ApplyAccountingPayment``: one line on its
    invoice; ``DELETED`` (Xero's only way to reverse a payment) is a delete. An
    overpayment or prepayment maps through :func:`credit_payment`."""
    if is_deleted(entity):
        return deleted_payment(entity_id(entity), updated(entity))
    if is_credit_payment(entity):
        return credit_payment(entity)
    currency = currency_of(entity)
    target = entity.get("Invoice")
    target = target if isinstance(target, Mapping) else {}
    amount = money(entity.get("Amount"), currency)
    invoice_id = _text(target.get("InvoiceID"))
    return _as_payment(
        entity,
        total=amount,
        unapplied=Money(currency_code=currency, minor_units=0),
        customer_id=_text(_contact(target).get("ContactID")),
        lines=[_invoice_line(invoice_id, amount)] if invoice_id else [],
        state=mpb.ENTITY_STATE_ACTIVE,
    )


def _invoice_line(invoice_id: str, amount: Money) -> mpb.PaymentLine:
    return mpb.PaymentLine(
        linked_txn_id=invoice_id, linked_txn_type=mpb.LINKED_TXN_TYPE_INVOICE, amount=amount
    )


def _as_payment(
    entity: Json,
    *,
    total: Money,
    unapplied: Money,
    customer_id: str,
    lines: list[mpb.PaymentLine],
    state: mpb.EntityState.ValueType,
) -> mpb.AccountingPayment:
    """The message for a payment, overpayment or prepayment: its id, version and times
    from the entity (``UpdatedDateUTC``; Xero gives no creation time), the rest given."""
    when = updated(entity)
    day = local_date(entity, "Date")
    return mpb.AccountingPayment(
        payment_id=entity_id(entity),
        version=version(entity),
        version_sequence=version_sequence(entity),
        txn_date=day.isoformat() if day else "",
        total_amount=total,
        unapplied_amount=unapplied,
        customer_id=customer_id,
        lines=lines,
        state=state,
        create_time=timestamp(when),
        last_updated_time=timestamp(when),
    )


def credit_payment(entity: Json) -> mpb.AccountingPayment:
    """A receive overpayment or prepayment as a payment: its allocations are its lines
    (one per invoice it was allocated to), its ``RemainingCredit`` (while ``AUTHORISED``)
    is the unapplied amount, so money the contact paid but nobody allocated reaches the
    matcher's unapplied-payment rule. A later allocation moves the money from unapplied
    to a line (the same payment, a newer version: no double counting); ``VOIDED`` is a
    voided payment (no unapplied money left). Times as for a payment: ``UpdatedDateUTC``."""
    currency = currency_of(entity)
    status = _text(entity.get("Status")).upper()
    receivable = _text(entity.get("Type")).upper() in RECEIVED_CREDIT
    lines = []
    for allocation in entity.get("Allocations") or []:
        if not isinstance(allocation, Mapping) or allocation.get("IsDeleted") is True:
            continue
        target = allocation.get("Invoice")
        invoice_id = _text(target.get("InvoiceID")) if isinstance(target, Mapping) else ""
        if invoice_id:
            lines.append(_invoice_line(invoice_id, money(allocation.get("Amount"), currency)))
    unapplied = (
        to_minor_units(entity.get("RemainingCredit") or 0, currency)
        if receivable and status == "AUTHORISED"
        else 0
    )
    return _as_payment(
        entity,
        total=money(entity.get("Total"), currency),
        unapplied=Money(currency_code=currency, minor_units=max(0, unapplied)),
        customer_id=_text(_contact(entity).get("ContactID")),
        lines=lines if receivable else [],
        state=mpb.ENTITY_STATE_VOIDED if status == "VOIDED" else mpb.ENTITY_STATE_ACTIVE,
    )


def linked_invoice_ids(entity: Json) -> list[str]:
    """The invoices a payment is on, or a credit note / overpayment / prepayment is
    allocated to (re-read when it changes)."""
    ids = []
    target = entity.get("Invoice")
    if isinstance(target, Mapping) and _text(target.get("InvoiceID")):
        ids.append(_text(target["InvoiceID"]))
    for allocation in entity.get("Allocations") or []:
        if isinstance(allocation, Mapping) and isinstance(allocation.get("Invoice"), Mapping):
            invoice_id = _text(allocation["Invoice"].get("InvoiceID"))
            if invoice_id:
                ids.append(invoice_id)
    return list(dict.fromkeys(ids))


# -- contacts ------------------------------------------------------------------------------

_PHONES = {
    "DEFAULT": mpb.PHONE_TYPE_PRIMARY,
    "MOBILE": mpb.PHONE_TYPE_MOBILE,
    "DDI": mpb.PHONE_TYPE_ALTERNATE,
    "OFFICE": mpb.PHONE_TYPE_ALTERNATE,
    "FAX": mpb.PHONE_TYPE_FAX,
}


def _address(contact: Json) -> mpb.PostalAddress | None:
    addresses = [a for a in contact.get("Addresses") or [] if isinstance(a, Mapping)]
    # The postal address (POBOX) is where Xero sends invoices; the street one otherwise.
    addresses.sort(key=lambda a: _text(a.get("AddressType")).upper() != "POBOX")
    for addr in addresses:
        lines = [_text(addr.get(f"AddressLine{n}")) for n in range(1, 5)]
        out = mpb.PostalAddress(
            lines=[line for line in lines if line],
            city=_text(addr.get("City")),
            region=_text(addr.get("Region")),
            postal_code=_text(addr.get("PostalCode")),
            country=_text(addr.get("Country")),
        )
        if out.ByteSize():
            return out
    return None


# The fields of a contact the sync reads (its id, status and time, and what
# ``debtor_contact`` maps): what the reader keeps of contacts it reads in pages.
CONTACT_FIELDS = frozenset(
    {
        "ContactID",
        "ContactStatus",
        "MergedToContactID",
        "UpdatedDateUTC",
        "UpdatedDateUTCString",
        "Name",
        "FirstName",
        "LastName",
        "EmailAddress",
        "Phones",
        "Addresses",
    }
)


def debtor_contact(contact: Json) -> mpb.DebtorContact:
    phones = []
    for phone in contact.get("Phones") or []:
        if not isinstance(phone, Mapping):
            continue
        parts = [_text(phone.get(k)) for k in ("PhoneCountryCode", "PhoneAreaCode", "PhoneNumber")]
        if parts[2]:
            kind = _PHONES.get(_text(phone.get("PhoneType")).upper(), mpb.PHONE_TYPE_ALTERNATE)
            phones.append(mpb.PhoneNumber(type=kind, number=" ".join(p for p in parts if p)))
    return mpb.DebtorContact(
        display_name=_text(contact.get("Name")),
        company_name=_text(contact.get("Name")) if not contact.get("FirstName") else "",
        given_name=_text(contact.get("FirstName")),
        family_name=_text(contact.get("LastName")),
        email=_text(contact.get("EmailAddress")),
        phones=phones,
        billing_address=_address(contact),
    )


def placement_input(
    entity: Json, *, facts: InvoiceFacts, debtor: mpb.DebtorContact | None
) -> mpb.PlacementInput:
    """One overdue invoice to place, with its contact's details (``debtor`` when read;
    else what the invoice's contact summary says)."""
    if debtor is None:
        debtor = debtor_contact(_contact(entity))
    return mpb.PlacementInput(
        invoice_id=facts.invoice_id,
        doc_number=facts.doc_number,
        customer_id=facts.customer_id,
        debtor=debtor,
        total_amount=Money(currency_code=facts.currency, minor_units=facts.total),
        balance=Money(currency_code=facts.currency, minor_units=facts.balance),
        invoice_date=facts.txn_date.isoformat() if facts.txn_date else "",
        due_date=facts.due_date.isoformat() if facts.due_date else "",
        version=version(entity),
        version_sequence=version_sequence(entity),
        last_updated_time=timestamp(updated(entity)),
        linked_txns=_linked_txns(entity),
    )


class XeroFacts:
    """``AccountingFacts`` for Xero (the seam's names for the functions above)."""

    def entity_id(self, entity: Json) -> str:
        return entity_id(entity)

    def is_deleted(self, entity: Json) -> bool:
        return is_deleted(entity)

    def invoice_facts(self, invoice: Json) -> InvoiceFacts:
        return invoice_facts(invoice)

    def invoice(self, invoice: Json) -> mpb.AccountingInvoice:
        return to_invoice(invoice)

    def payment(self, payment: Json) -> mpb.AccountingPayment:
        return to_payment(payment)

    def debtor_contact(self, customer: Json) -> mpb.DebtorContact:
        return debtor_contact(customer)

    def placement_input(
        self, invoice: Json, *, facts: InvoiceFacts, debtor: mpb.DebtorContact | None
    ) -> mpb.PlacementInput:
        return placement_input(invoice, facts=facts, debtor=debtor)

    def linked_invoice_ids(self, entity: Json) -> list[str]:
        return linked_invoice_ids(entity)

    def parse_time(self, text: str) -> datetime:
        return parse_time(text)
