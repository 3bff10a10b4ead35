"""A Xero organisation's books and the bookkeeper's actions on them.

Amounts are integer cents.  Every action keeps each invoice's ``AmountPaid``,
``AmountCredited``, ``AmountDue`` and ``Status`` consistent with its payments and the
credit-note, overpayment and prepayment allocations against it, the way Xero does, stamps
``UpdatedDateUTC`` on what it changed, and reports each change (for webhooks).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Final

from emulators.common import money
from emulators.common.clock import Clock, TenantClock
from emulators.xero.dates import (
    date_string,
    ms_date,
    ms_instant,
    org_zone,
    utc_string,
)

JsonObject = dict[str, Any]

INVOICE: Final = "INVOICE"
CONTACT: Final = "CONTACT"
CREDITNOTE: Final = "CREDITNOTE"
CREATE: Final = "CREATE"
UPDATE: Final = "UPDATE"

INVOICE_STATUSES: Final = ("DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED")
CREDIT_KINDS: Final = ("CreditNote", "Overpayment", "Prepayment")


class BookError(Exception):
    """An action Xero would refuse: a 400 ValidationException (or 404)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class Line:
    description: str
    amount: int  # cents, no tax
    quantity: int = 1
    account_code: str = "200"

    def to_json(self) -> JsonObject:
        unit = money.to_json(self.amount // self.quantity) if self.quantity else 0
        return {
            "LineItemID": str(uuid.uuid5(uuid.NAMESPACE_OID, f"{self.description}{self.amount}")),
            "Description": self.description,
            "Quantity": float(self.quantity),
            "UnitAmount": unit,
            "AccountCode": self.account_code,
            "TaxType": "NONE",
            "TaxAmount": 0.0,
            "LineAmount": money.to_json(self.amount),
        }


@dataclass(slots=True)
class Contact:
    id: str
    name: str
    updated: float
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    number: str = ""
    status: str = "ACTIVE"  # ACTIVE | ARCHIVED | GDPRREQUEST
    merged_to: str = ""

    def summary(self) -> JsonObject:
        return {"ContactID": self.id, "Name": self.name}


@dataclass(slots=True)
class Payment:
    id: str
    invoice_id: str
    amount: int
    day: date
    updated: float
    reference: str = ""
    status: str = "AUTHORISED"  # AUTHORISED | DELETED
    currency_rate: float = 1.0
    batch_id: str = ""


@dataclass(slots=True)
class Allocation:
    id: str
    invoice_id: str
    amount: int
    day: date
    deleted: bool = False


@dataclass(slots=True)
class Credit:
    """A credit note, overpayment or prepayment: credit that allocations spend."""

    kind: str  # CreditNote | Overpayment | Prepayment
    id: str
    number: str
    contact_id: str
    total: int
    day: date
    updated: float
    currency: str
    status: str = "AUTHORISED"  # + PAID (all spent) | VOIDED | DELETED
    reference: str = ""
    allocations: list[Allocation] = field(default_factory=list)

    @property
    def applied(self) -> int:
        return sum(a.amount for a in self.allocations if not a.deleted)

    @property
    def remaining(self) -> int:
        return 0 if self.status in ("VOIDED", "DELETED") else self.total - self.applied


@dataclass(slots=True)
class Invoice:
    id: str
    number: str
    contact_id: str
    lines: list[Line]
    day: date
    due: date
    updated: float
    currency: str
    type: str = "ACCREC"
    status: str = "AUTHORISED"
    reference: str = ""
    sent_to_contact: bool = False
    fully_paid_on: date | None = None
    payment_ids: list[str] = field(default_factory=list)
    # (credit kind, credit id, allocation id) of allocations against this invoice
    credit_refs: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


class Organisation(TenantClock):
    """One tenant's books."""

    def __init__(
        self,
        tenant_id: str,
        name: str,
        clock: Clock,
        *,
        timezone: str = "NEWZEALANDSTANDARDTIME",
        base_currency: str = "NZD",
        country_code: str = "NZ",
        today: date | None = None,
        starter_tier: bool = False,
    ) -> None:
        super().__init__(clock, org_zone(timezone), today)
        self.tenant_id = tenant_id
        self.name = name
        self.timezone = timezone
        self.base_currency = base_currency
        self.country_code = country_code
        self.starter_tier = starter_tier
        self.short_code = "!" + tenant_id[:5]
        self.created = self.now()
        self.contacts: dict[str, Contact] = {}
        self.invoices: dict[str, Invoice] = {}
        self._by_contact: dict[str, list[str]] = {}  # contact id -> its invoices' ids
        self.payments: dict[str, Payment] = {}
        self.credits: dict[str, Credit] = {}
        self.version = 0
        self._next_invoice = 1
        self._next_credit = 1
        self._last_stamp = 0.0
        self.on_change: Callable[[str, str, str, str, float, JsonObject | None], None] | None
        self.on_change = None
        # UNCONFIRMED behaviours, set from the emulator's configuration.
        self.payment_webhooks = True
        self.due_date_bumps_part_paid = False

    # -- clock ---------------------------------------------------------------------------

    def set_timezone(self, name: str) -> None:
        self.move_to_zone(org_zone(name))
        self.timezone = name

    def stamp(self) -> float:
        """A fresh ``UpdatedDateUTC``: strictly after the previous one (millisecond steps)."""
        now = max(self.now(), self._last_stamp + 0.001)
        self._last_stamp = now
        return now

    # -- change reporting ---------------------------------------------------------------

    def _emit(self, category: str, operation: str, resource_id: str, at: float) -> None:
        self.version += 1
        if self.on_change is not None:
            data = None
            if category == CREDITNOTE:
                credit = self.credits[resource_id]
                data = {"Type": "ACCRECCREDIT", "Status": credit.status}
            self.on_change(self.tenant_id, category, operation, resource_id, at, data)

    def _touch_invoice(self, invoice: Invoice, *, by_payment: bool) -> None:
        invoice.updated = self.stamp()
        if not by_payment or self.payment_webhooks:
            self._emit(INVOICE, UPDATE, invoice.id, invoice.updated)

    # -- lookups ------------------------------------------------------------------------

    def contact(self, contact_id: str) -> Contact:
        found = self.contacts.get(contact_id)
        if found is None:
            raise BookError(f"no contact {contact_id}", 404)
        return found

    def invoice(self, invoice_id: str) -> Invoice:
        found = self.invoices.get(invoice_id)
        if found is None:
            raise BookError(f"no invoice {invoice_id}", 404)
        return found

    def payment(self, payment_id: str) -> Payment:
        found = self.payments.get(payment_id)
        if found is None:
            raise BookError(f"no payment {payment_id}", 404)
        return found

    def credit(self, kind: str, credit_id: str) -> Credit:
        found = self.credits.get(credit_id)
        if found is None or found.kind != kind:
            raise BookError(f"no {kind} {credit_id}", 404)
        return found

    # -- amounts ------------------------------------------------------------------------

    def amount_paid(self, invoice: Invoice) -> int:
        return sum(
            self.payments[p].amount
            for p in invoice.payment_ids
            if self.payments[p].status != "DELETED"
        )

    def credit_allocations(self, invoice: Invoice) -> list[tuple[Credit, Allocation]]:
        found = []
        for _kind, credit_id, allocation_id in invoice.credit_refs:
            credit = self.credits[credit_id]
            for allocation in credit.allocations:
                if allocation.id == allocation_id and not allocation.deleted:
                    found.append((credit, allocation))
        return found

    def amount_credited(self, invoice: Invoice) -> int:
        return sum(a.amount for _, a in self.credit_allocations(invoice))

    def amount_due(self, invoice: Invoice) -> int:
        if invoice.status in ("VOIDED", "DELETED"):
            return 0
        return invoice.total - self.amount_paid(invoice) - self.amount_credited(invoice)

    def _settle(self, invoice: Invoice, day: date) -> None:
        """PAID when nothing is due, back to AUTHORISED when something is again."""
        due = self.amount_due(invoice)
        if invoice.status == "AUTHORISED" and due == 0:
            invoice.status = "PAID"
            invoice.fully_paid_on = day
        elif invoice.status == "PAID" and due > 0:
            invoice.status = "AUTHORISED"
            invoice.fully_paid_on = None

    def _check_payable(self, invoice: Invoice, amount: int) -> None:
        if invoice.status != "AUTHORISED":
            raise BookError(
                f"Payments can only be made against Authorised documents "
                f"(invoice {invoice.number} is {invoice.status})"
            )
        if amount <= 0:
            raise BookError("the amount must be positive")
        if amount > self.amount_due(invoice):
            raise BookError(
                f"Payment amount exceeds the amount outstanding on this document "
                f"({money.to_text(self.amount_due(invoice))})"
            )

    # -- contacts -------------------------------------------------------------------------

    def add_contact(self, name: str, **details: str) -> Contact:
        if not name.strip():
            raise BookError("The contact name must be specified")
        for other in self.contacts.values():
            if other.name == name and other.status == "ACTIVE":
                raise BookError(f"The contact name {name} is already assigned to another contact")
        contact = Contact(new_id(), name, self.stamp(), **details)
        self.contacts[contact.id] = contact
        self._emit(CONTACT, CREATE, contact.id, contact.updated)
        return contact

    def load_contact(self, contact: Contact) -> None:
        self.contacts[contact.id] = contact
        self.version += 1

    def update_contact(self, contact_id: str, changes: dict[str, str]) -> Contact:
        contact = self.contact(contact_id)
        for key, value in changes.items():
            if key not in {
                "name",
                "first_name",
                "last_name",
                "email",
                "phone",
                "number",
                "status",
                "merged_to",
            }:
                raise BookError(f"unknown contact field {key}")
            if key == "status" and value not in ("ACTIVE", "ARCHIVED", "GDPRREQUEST"):
                raise BookError("status must be ACTIVE, ARCHIVED or GDPRREQUEST")
            setattr(contact, key, value)
        contact.updated = self.stamp()
        self._emit(CONTACT, UPDATE, contact.id, contact.updated)
        return contact

    # -- invoices -------------------------------------------------------------------------

    def _invoice_number(self) -> str:
        number = f"INV-{self._next_invoice:04d}"
        self._next_invoice += 1
        return number

    def add_invoice(
        self,
        contact_id: str,
        lines: list[Line],
        *,
        day: date | None = None,
        due: date | None = None,
        status: str = "AUTHORISED",
        number: str | None = None,
        currency: str | None = None,
        reference: str = "",
        invoice_type: str = "ACCREC",
    ) -> Invoice:
        self.contact(contact_id)
        if status not in ("DRAFT", "SUBMITTED", "AUTHORISED"):
            raise BookError("a new invoice is DRAFT, SUBMITTED or AUTHORISED")
        if invoice_type not in ("ACCREC", "ACCPAY"):
            raise BookError("Type must be ACCREC or ACCPAY")
        if not lines:
            raise BookError("an invoice needs at least one line")
        day = day or self.today()
        invoice = Invoice(
            id=new_id(),
            number=number or self._invoice_number(),
            contact_id=contact_id,
            lines=lines,
            day=day,
            due=due or day + timedelta(days=30),
            updated=self.stamp(),
            currency=currency or self.base_currency,
            type=invoice_type,
            status=status,
            reference=reference,
        )
        self.invoices[invoice.id] = invoice
        self._by_contact.setdefault(contact_id, []).append(invoice.id)
        self._emit(INVOICE, CREATE, invoice.id, invoice.updated)
        return invoice

    def load_invoice(self, invoice: Invoice) -> None:
        self.invoices[invoice.id] = invoice
        self._by_contact.setdefault(invoice.contact_id, []).append(invoice.id)
        self._next_invoice = max(self._next_invoice, len(self.invoices) + 1)
        self.version += 1

    def update_invoice(
        self,
        invoice_id: str,
        *,
        due: date | None = None,
        status: str | None = None,
        reference: str | None = None,
        sent_to_contact: bool | None = None,
    ) -> Invoice:
        invoice = self.invoice(invoice_id)
        if invoice.status in ("VOIDED", "DELETED"):
            raise BookError(f"invoice {invoice.number} is {invoice.status} and cannot be edited")
        bump = False
        if status is not None:
            if status == "AUTHORISED" and invoice.status in ("DRAFT", "SUBMITTED"):
                invoice.status = status
                bump = True
            elif status != invoice.status:
                raise BookError(f"cannot change status from {invoice.status} to {status} here")
        if reference is not None:
            invoice.reference = reference
            bump = True
        if due is not None and due != invoice.due:
            invoice.due = due
            part_paid = self.amount_paid(invoice) > 0 or self.amount_credited(invoice) > 0
            # Xero: "changes to partially paid transactions which don't generate a journal
            # such as DueDate or SentToContact" do not bump UpdatedDateUTC.
            bump = bump or not part_paid or self.due_date_bumps_part_paid
        if sent_to_contact is not None:
            invoice.sent_to_contact = sent_to_contact
        if bump:
            self._touch_invoice(invoice, by_payment=False)
        else:
            self.version += 1
        return invoice

    def void_invoice(self, invoice_id: str) -> Invoice:
        invoice = self.invoice(invoice_id)
        if invoice.status != "AUTHORISED":
            raise BookError(
                f"Only AUTHORISED invoices can be voided (invoice {invoice.number} is "
                f"{invoice.status}); DRAFT and SUBMITTED ones are deleted"
            )
        if self.amount_paid(invoice) or self.amount_credited(invoice):
            raise BookError(
                "This document cannot be voided: it has payments or credits allocated; "
                "remove them first"
            )
        invoice.status = "VOIDED"
        self._touch_invoice(invoice, by_payment=False)
        return invoice

    def delete_invoice(self, invoice_id: str) -> Invoice:
        invoice = self.invoice(invoice_id)
        if invoice.status not in ("DRAFT", "SUBMITTED"):
            raise BookError(
                f"Only DRAFT or SUBMITTED invoices can be deleted (invoice {invoice.number} "
                f"is {invoice.status}); AUTHORISED ones are voided"
            )
        invoice.status = "DELETED"
        self._touch_invoice(invoice, by_payment=False)
        return invoice

    # -- payments -------------------------------------------------------------------------

    def add_payment(
        self,
        invoice_id: str,
        amount: int,
        *,
        day: date | None = None,
        reference: str = "",
        currency_rate: float = 1.0,
        batch_id: str = "",
    ) -> Payment:
        invoice = self.invoice(invoice_id)
        self._check_payable(invoice, amount)
        payment = Payment(
            new_id(),
            invoice.id,
            amount,
            day or self.today(),
            self.stamp(),
            reference=reference,
            currency_rate=currency_rate,
            batch_id=batch_id,
        )
        self.payments[payment.id] = payment
        invoice.payment_ids.append(payment.id)
        self._settle(invoice, payment.day)
        self._touch_invoice(invoice, by_payment=True)
        return payment

    def delete_payment(self, payment_id: str) -> Payment:
        """Xero never edits a payment: it is deleted (``Status: DELETED``, still listed)."""
        payment = self.payment(payment_id)
        if payment.status == "DELETED":
            raise BookError("the payment is already deleted")
        payment.status = "DELETED"
        payment.updated = self.stamp()
        invoice = self.invoices[payment.invoice_id]
        self._settle(invoice, payment.day)
        self._touch_invoice(invoice, by_payment=True)
        return payment

    # -- credit notes, overpayments, prepayments ----------------------------------------

    def add_credit(
        self,
        kind: str,
        contact_id: str,
        total: int,
        *,
        day: date | None = None,
        reference: str = "",
        currency: str | None = None,
    ) -> Credit:
        if kind not in CREDIT_KINDS:
            raise BookError(f"unknown credit kind {kind}")
        self.contact(contact_id)
        if total <= 0:
            raise BookError("the amount must be positive")
        prefix = {"CreditNote": "CN", "Overpayment": "OP", "Prepayment": "PP"}[kind]
        credit = Credit(
            kind,
            new_id(),
            f"{prefix}-{self._next_credit:04d}",
            contact_id,
            total,
            day or self.today(),
            self.stamp(),
            currency or self.base_currency,
            reference=reference,
        )
        self._next_credit += 1
        self.credits[credit.id] = credit
        if kind == "CreditNote":
            self._emit(CREDITNOTE, CREATE, credit.id, credit.updated)
        return credit

    def _touch_credit(self, credit: Credit) -> None:
        credit.updated = self.stamp()
        if credit.kind == "CreditNote":
            self._emit(CREDITNOTE, UPDATE, credit.id, credit.updated)

    def allocate(
        self, kind: str, credit_id: str, invoice_id: str, amount: int, *, day: date | None = None
    ) -> Allocation:
        credit = self.credit(kind, credit_id)
        invoice = self.invoice(invoice_id)
        if credit.status != "AUTHORISED":
            raise BookError(f"{kind} {credit.number} is {credit.status}: nothing to allocate")
        if invoice.contact_id != credit.contact_id:
            raise BookError("the credit and the invoice belong to different contacts")
        if invoice.currency != credit.currency:
            raise BookError("the credit and the invoice are in different currencies")
        if amount > credit.remaining:
            raise BookError(
                f"the allocation exceeds the remaining credit ({money.to_text(credit.remaining)})"
            )
        self._check_payable(invoice, amount)
        allocation = Allocation(new_id(), invoice.id, amount, day or self.today())
        credit.allocations.append(allocation)
        invoice.credit_refs.append((kind, credit.id, allocation.id))
        if credit.remaining == 0:
            credit.status = "PAID"
        self._settle(invoice, allocation.day)
        self._touch_credit(credit)
        self._touch_invoice(invoice, by_payment=True)
        return allocation

    def delete_allocation(self, kind: str, credit_id: str, allocation_id: str) -> Credit:
        credit = self.credit(kind, credit_id)
        allocation = next(
            (a for a in credit.allocations if a.id == allocation_id and not a.deleted), None
        )
        if allocation is None:
            raise BookError(f"no allocation {allocation_id}", 404)
        allocation.deleted = True
        if credit.status == "PAID":
            credit.status = "AUTHORISED"
        invoice = self.invoices[allocation.invoice_id]
        self._settle(invoice, allocation.day)
        self._touch_credit(credit)
        self._touch_invoice(invoice, by_payment=True)
        return credit

    def void_credit(self, kind: str, credit_id: str) -> Credit:
        credit = self.credit(kind, credit_id)
        if credit.applied:
            raise BookError("remove the allocations before voiding")
        if credit.status != "AUTHORISED":
            raise BookError(f"{kind} {credit.number} is {credit.status}")
        credit.status = "VOIDED"
        self._touch_credit(credit)
        return credit

    # -- rendering ------------------------------------------------------------------------

    def contact_json(self, contact: Contact, *, summary: bool = False) -> JsonObject:
        out: JsonObject = {
            "ContactID": contact.id,
            "ContactStatus": contact.status,
            "Name": contact.name,
        }
        if contact.number:
            out["ContactNumber"] = contact.number
        if contact.first_name:
            out["FirstName"] = contact.first_name
        if contact.last_name:
            out["LastName"] = contact.last_name
        if contact.email:
            out["EmailAddress"] = contact.email
        out["Addresses"] = []
        out["Phones"] = (
            [{"PhoneType": "DEFAULT", "PhoneNumber": contact.phone}] if contact.phone else []
        )
        out["UpdatedDateUTC"] = ms_instant(contact.updated)
        out["ContactGroups"] = []
        out["IsSupplier"] = False
        out["IsCustomer"] = bool(self._by_contact.get(contact.id))
        if contact.merged_to:
            out["MergedToContactID"] = contact.merged_to
        if not summary:
            out["Balances"] = self._balances(contact)
        out["ContactPersons"] = []
        out["HasAttachments"] = False
        out["HasValidationErrors"] = False
        return out

    def _balances(self, contact: Contact) -> JsonObject:
        today = self.today()
        invoices = (self.invoices[i] for i in self._by_contact.get(contact.id, ()))
        open_invoices = [i for i in invoices if i.type == "ACCREC" and i.status == "AUTHORISED"]
        outstanding = sum(self.amount_due(i) for i in open_invoices)
        overdue = sum(self.amount_due(i) for i in open_invoices if i.due < today)
        return {
            "AccountsReceivable": {
                "Outstanding": money.to_json(outstanding),
                "Overdue": money.to_json(overdue),
            },
            "AccountsPayable": {"Outstanding": 0.0, "Overdue": 0.0},
        }

    def _payment_summary(self, payment: Payment) -> JsonObject:
        return {
            "PaymentID": payment.id,
            "Date": ms_date(payment.day),
            "Amount": money.to_json(payment.amount),
            "Reference": payment.reference,
            "CurrencyRate": payment.currency_rate,
            "HasAccount": False,
            "HasValidationErrors": False,
        }

    # The fields of ``invoice_fields``, as paths a ``where`` or ``order`` may name.
    INVOICE_FIELDS = frozenset(
        {
            ("type",),
            ("invoiceid",),
            ("invoicenumber",),
            ("reference",),
            ("amountdue",),
            ("amountpaid",),
            ("amountcredited",),
            ("contact", "contactid"),
            ("contact", "name"),
            ("date",),
            ("duedate",),
            ("status",),
            ("subtotal",),
            ("total",),
            ("updateddateutc",),
            ("currencycode",),
            ("senttocontact",),
        }
    )

    def invoice_fields(self, invoice: Invoice) -> JsonObject:
        """The invoice's own fields and its contact's id and name, as ``invoice_json``
        renders them, without its lines, allocations and payments: what a listing filters
        and sorts a 100,000-invoice organisation on before it renders one page."""
        return {
            "Type": invoice.type,
            "InvoiceID": invoice.id,
            "InvoiceNumber": invoice.number,
            "Reference": invoice.reference,
            "AmountDue": money.to_json(self.amount_due(invoice)),
            "AmountPaid": money.to_json(self.amount_paid(invoice)),
            "AmountCredited": money.to_json(self.amount_credited(invoice)),
            "Contact": self.contacts[invoice.contact_id].summary(),
            "Date": ms_date(invoice.day),
            "DueDate": ms_date(invoice.due),
            "Status": invoice.status,
            "SubTotal": money.to_json(invoice.total),
            "Total": money.to_json(invoice.total),
            "UpdatedDateUTC": ms_instant(invoice.updated),
            "CurrencyCode": invoice.currency,
            "SentToContact": invoice.sent_to_contact,
        }

    def invoice_json(self, invoice: Invoice, *, summary: bool = False) -> JsonObject:
        contact = self.contacts[invoice.contact_id]
        out: JsonObject = {
            **self.invoice_fields(invoice),
            "Prepayments": [],
            "Overpayments": [],
            "CreditNotes": [],
            "CurrencyRate": 1.0,
            "IsDiscounted": False,
            "HasAttachments": False,
            "HasErrors": False,
            "Contact": {
                **contact.summary(),
                "ContactStatus": contact.status,
                "Addresses": [],
                "Phones": [],
                "ContactGroups": [],
                "ContactPersons": [],
                "HasValidationErrors": False,
            },
            "DateString": date_string(invoice.day),
            "DueDateString": date_string(invoice.due),
            "LineAmountTypes": "NoTax",
            "TotalTax": 0.0,
            "UpdatedDateUTCString": utc_string(invoice.updated),
        }
        if invoice.fully_paid_on is not None:
            out["FullyPaidOnDate"] = ms_date(invoice.fully_paid_on)
        for credit, allocation in self.credit_allocations(invoice):
            key = f"{credit.kind}s"
            entry: JsonObject = {
                f"{credit.kind}ID": credit.id,
                "Date": ms_date(allocation.day),
                "AppliedAmount": money.to_json(allocation.amount),
                "Total": money.to_json(credit.total),
            }
            if credit.kind == "CreditNote":
                entry["CreditNoteNumber"] = credit.number
            out[key].append(entry)
        out["Payments"] = [
            self._payment_summary(self.payments[p])
            for p in invoice.payment_ids
            if self.payments[p].status != "DELETED"
        ]
        if not summary:
            out["LineItems"] = [line.to_json() for line in invoice.lines]
        return out

    def payment_json(self, payment: Payment) -> JsonObject:
        invoice = self.invoices[payment.invoice_id]
        out = self._payment_summary(payment)
        out.update(
            {
                "BankAmount": money.to_json(payment.amount),
                "PaymentType": "ACCRECPAYMENT" if invoice.type == "ACCREC" else "ACCPAYPAYMENT",
                "Status": payment.status,
                "UpdatedDateUTC": ms_instant(payment.updated),
                "UpdatedDateUTCString": utc_string(payment.updated),
                "IsReconciled": False,
                "Account": {"AccountID": "5040915e-8ce7-4177-8d08-fde416232f18", "Code": "090"},
                "Invoice": {
                    "Type": invoice.type,
                    "InvoiceID": invoice.id,
                    "InvoiceNumber": invoice.number,
                    "Contact": self.contacts[invoice.contact_id].summary(),
                    "CurrencyCode": invoice.currency,
                },
            }
        )
        if payment.batch_id:
            out["BatchPaymentID"] = payment.batch_id
        return out

    def credit_json(self, credit: Credit) -> JsonObject:
        kind = credit.kind
        types = {
            "CreditNote": "ACCRECCREDIT",
            "Overpayment": "RECEIVE-OVERPAYMENT",
            "Prepayment": "RECEIVE-PREPAYMENT",
        }
        out: JsonObject = {
            f"{kind}ID": credit.id,
            "Type": types[kind],
            "Contact": self.contacts[credit.contact_id].summary(),
            "DateString": date_string(credit.day),
            "Date": ms_date(credit.day),
            "Status": credit.status,
            "LineAmountTypes": "NoTax",
            "SubTotal": money.to_json(credit.total),
            "TotalTax": 0.0,
            "Total": money.to_json(credit.total),
            "UpdatedDateUTC": ms_instant(credit.updated),
            "UpdatedDateUTCString": utc_string(credit.updated),
            "CurrencyCode": credit.currency,
            "CurrencyRate": 1.0,
            "RemainingCredit": money.to_json(credit.remaining),
            "AppliedAmount": money.to_json(credit.applied),
            "Allocations": [
                {
                    "AllocationID": a.id,
                    "Amount": money.to_json(a.amount),
                    "Date": ms_date(a.day),
                    "Invoice": {
                        "InvoiceID": a.invoice_id,
                        "InvoiceNumber": self.invoices[a.invoice_id].number,
                    },
                    "IsDeleted": False,
                }
                for a in credit.allocations
                if not a.deleted
            ],
            "HasAttachments": False,
        }
        if kind == "CreditNote":
            out["CreditNoteNumber"] = credit.number
            out["Reference"] = credit.reference
            out["LineItems"] = [Line("Credit", credit.total).to_json()]
        if credit.status == "PAID":
            last = max(a.day for a in credit.allocations if not a.deleted)
            out["FullyPaidOnDate"] = ms_date(last)
        return out

    def organisation_json(self) -> JsonObject:
        return {
            "OrganisationID": self.tenant_id,
            "APIKey": "",
            "Name": self.name,
            "LegalName": self.name,
            "PaysTax": True,
            "Version": self.country_code,
            "OrganisationType": "COMPANY",
            "BaseCurrency": self.base_currency,
            "CountryCode": self.country_code,
            "IsDemoCompany": False,
            "OrganisationStatus": "ACTIVE",
            "FinancialYearEndDay": 31,
            "FinancialYearEndMonth": 3,
            "DefaultSalesTax": "Tax Exclusive",
            "DefaultPurchasesTax": "Tax Exclusive",
            "CreatedDateUTC": ms_instant(self.created),
            "OrganisationEntityType": "COMPANY",
            "Timezone": self.timezone,
            "ShortCode": self.short_code,
            "OrganisationCountryCode": self.country_code,
            "Edition": "BUSINESS",
            "Class": "STANDARD",
            "Addresses": [],
            "Phones": [],
            "ExternalLinks": [],
            "PaymentTerms": {},
        }

    def summary(self) -> JsonObject:
        return {
            "tenant_id": self.tenant_id,
            "name": self.name,
            "timezone": self.timezone,
            "base_currency": self.base_currency,
            "today": self.today().isoformat(),
            "starter_tier": self.starter_tier,
            "counts": {
                "contacts": len(self.contacts),
                "invoices": len(self.invoices),
                "payments": len(self.payments),
                "credit_notes": sum(1 for c in self.credits.values() if c.kind == "CreditNote"),
                "overpayments": sum(1 for c in self.credits.values() if c.kind == "Overpayment"),
                "prepayments": sum(1 for c in self.credits.values() if c.kind == "Prepayment"),
            },
        }
