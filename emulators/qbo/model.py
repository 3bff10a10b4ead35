"""QBO entities as the emulator keeps them, and how they render as Intuit's JSON.

Amounts are integer cents.  Each entity caches its rendered JSON bytes; anything that
changes what the entity would render calls :meth:`Entity.invalidate` (a change the user
made also calls :meth:`Entity.touch`, which bumps ``SyncToken`` and ``LastUpdatedTime``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from typing import Any, ClassVar, Final

from emulators.common import money
from emulators.qbo.clock import format_seconds

CUSTOMER: Final = "Customer"
INVOICE: Final = "Invoice"
PAYMENT: Final = "Payment"
CREDIT_MEMO: Final = "CreditMemo"
ENTITY_NAMES: Final = (CUSTOMER, INVOICE, PAYMENT, CREDIT_MEMO)

CURRENCY_NAMES: Final = {
    "USD": "United States Dollar",
    "CAD": "Canadian Dollar",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "AUD": "Australian Dollar",
    "MXN": "Mexican Peso",
}

JsonObject = dict[str, Any]


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass(slots=True)
class Address:
    line1: str
    city: str
    region: str
    postal_code: str
    country: str = "US"
    id: str = ""

    def to_dict(self) -> JsonObject:
        out: JsonObject = {}
        if self.id:
            out["Id"] = self.id
        out["Line1"] = self.line1
        out["City"] = self.city
        out["CountrySubDivisionCode"] = self.region
        out["PostalCode"] = self.postal_code
        out["Country"] = self.country
        return out

    @staticmethod
    def from_dict(data: JsonObject) -> Address:
        return Address(
            line1=str(data.get("line1", data.get("Line1", ""))),
            city=str(data.get("city", data.get("City", ""))),
            region=str(data.get("region", data.get("CountrySubDivisionCode", ""))),
            postal_code=str(data.get("postal_code", data.get("PostalCode", ""))),
            country=str(data.get("country", data.get("Country", "US"))),
        )


class Entity:
    """Common bookkeeping fields: ``Id``, ``SyncToken`` and ``MetaData``."""

    __slots__ = ("_json", "created", "id", "sync_token", "updated")
    kind: ClassVar[str]

    def __init__(self, entity_id: str, created: float) -> None:
        self.id = entity_id
        self.sync_token = 0
        self.created = created
        self.updated = created
        self._json: bytes | None = None

    def touch(self, now: float) -> None:
        """A change a user made: new ``SyncToken`` and ``LastUpdatedTime``."""
        self.sync_token += 1
        self.updated = max(now, self.updated)
        self._json = None

    def invalidate(self) -> None:
        """Something this entity shows changed without being a change to it."""
        self._json = None

    def to_dict(self, tz: tzinfo, names: NameLookup) -> JsonObject:
        raise NotImplementedError

    def json_bytes(self, tz: tzinfo, names: NameLookup) -> bytes:
        cached = self._json
        if cached is None:
            cached = self._json = _dumps(self.to_dict(tz, names))
        return cached

    def _head(self) -> JsonObject:
        return {"Id": self.id, "SyncToken": str(self.sync_token), "domain": "QBO", "sparse": False}

    def _meta(self, tz: tzinfo) -> JsonObject:
        return {
            "CreateTime": format_seconds(self.created, tz),
            "LastUpdatedTime": format_seconds(self.updated, tz),
        }


class NameLookup:
    """What rendering needs from the company: customer display names and doc numbers."""

    def customer_name(self, customer_id: str) -> str:
        raise NotImplementedError

    def multicurrency(self) -> bool:
        raise NotImplementedError


def _currency_ref(code: str) -> JsonObject:
    return {"value": code, "name": CURRENCY_NAMES.get(code, code)}


def _rate_json(rate: Decimal) -> float | int:
    return int(rate) if rate == rate.to_integral_value() else float(rate)


class Customer(Entity):
    __slots__ = (
        "active",
        "address",
        "balance",
        "company_name",
        "currency",
        "display_name",
        "email",
        "family_name",
        "given_name",
        "mobile",
        "notes",
        "phone",
    )
    kind = CUSTOMER

    def __init__(
        self,
        entity_id: str,
        created: float,
        *,
        display_name: str,
        given_name: str = "",
        family_name: str = "",
        company_name: str = "",
        email: str = "",
        phone: str = "",
        mobile: str = "",
        address: Address | None = None,
        currency: str = "USD",
        notes: str = "",
    ) -> None:
        super().__init__(entity_id, created)
        self.display_name = display_name
        self.given_name = given_name
        self.family_name = family_name
        self.company_name = company_name
        self.email = email
        self.phone = phone
        self.mobile = mobile
        self.address = address
        self.currency = currency
        self.notes = notes
        self.active = True
        self.balance = 0  # open balance in the customer's currency, kept by the company

    def to_dict(self, tz: tzinfo, names: NameLookup) -> JsonObject:
        out = self._head()
        out["Active"] = self.active
        out["DisplayName"] = self.display_name
        if self.company_name:
            out["CompanyName"] = self.company_name
        if self.given_name:
            out["GivenName"] = self.given_name
        if self.family_name:
            out["FamilyName"] = self.family_name
        out["FullyQualifiedName"] = self.display_name
        out["PrintOnCheckName"] = self.company_name or self.display_name
        if self.email:
            out["PrimaryEmailAddr"] = {"Address": self.email}
        if self.phone:
            out["PrimaryPhone"] = {"FreeFormNumber": self.phone}
        if self.mobile:
            out["Mobile"] = {"FreeFormNumber": self.mobile}
        if self.address is not None:
            out["BillAddr"] = self.address.to_dict()
        if self.notes:
            out["Notes"] = self.notes
        out["Balance"] = money.to_json(self.balance)
        out["BalanceWithJobs"] = money.to_json(self.balance)
        out["CurrencyRef"] = _currency_ref(self.currency)
        out["Job"] = False
        out["BillWithParent"] = False
        out["Taxable"] = False
        out["PreferredDeliveryMethod"] = "Print"
        out["MetaData"] = self._meta(tz)
        return out


@dataclass(slots=True)
class SalesLine:
    amount: int
    description: str
    item_name: str = "Services"
    item_id: str = "1"
    qty: int = 1

    def to_dict(self, number: int) -> JsonObject:
        unit: float | int
        if self.qty == 0:
            unit = 0
        elif self.amount % self.qty == 0:
            unit = money.to_json(self.amount // self.qty)
        else:
            unit = _rate_json(Decimal(self.amount) / 100 / self.qty)
        return {
            "Id": str(number),
            "LineNum": number,
            "Amount": money.to_json(self.amount),
            "Description": self.description,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {
                "ItemRef": {"name": self.item_name, "value": self.item_id},
                "Qty": self.qty,
                "UnitPrice": unit,
                "TaxCodeRef": {"value": "NON"},
            },
        }


class _SalesTxn(Entity):
    """Invoice and CreditMemo share lines, currency and the void mechanics."""

    __slots__ = (
        "bill_email",
        "currency",
        "customer_id",
        "doc_number",
        "exchange_rate",
        "lines",
        "payment_ids",
        "private_note",
        "txn_date",
        "voided",
    )

    def __init__(
        self,
        entity_id: str,
        created: float,
        *,
        customer_id: str,
        doc_number: str,
        txn_date: str,
        lines: list[SalesLine],
        currency: str,
        exchange_rate: Decimal | None,
        bill_email: str = "",
        private_note: str = "",
    ) -> None:
        super().__init__(entity_id, created)
        self.customer_id = customer_id
        self.doc_number = doc_number
        self.txn_date = txn_date
        self.lines = lines
        self.currency = currency
        self.exchange_rate = exchange_rate
        self.bill_email = bill_email
        self.private_note = private_note
        self.payment_ids: list[str] = []  # payments linking this txn, oldest first
        self.voided = False

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)

    def _lines_json(self) -> list[JsonObject]:
        rendered = [line.to_dict(n) for n, line in enumerate(self.lines, start=1)]
        rendered.append(
            {
                "Amount": money.to_json(self.total),
                "DetailType": "SubTotalLineDetail",
                "SubTotalLineDetail": {},
            }
        )
        return rendered

    def _money_fields(self, out: JsonObject, names: NameLookup, balance: int) -> None:
        out["CurrencyRef"] = _currency_ref(self.currency)
        if names.multicurrency():
            rate = self.exchange_rate if self.exchange_rate is not None else Decimal(1)
            out["ExchangeRate"] = _rate_json(rate)
            out["HomeTotalAmt"] = money.to_json(money.convert(self.total, rate))
            out["HomeBalance"] = money.to_json(money.convert(balance, rate))


class Invoice(_SalesTxn):
    __slots__ = ("balance", "due_date", "email_status", "terms")
    kind = INVOICE

    def __init__(
        self,
        entity_id: str,
        created: float,
        *,
        customer_id: str,
        doc_number: str,
        txn_date: str,
        due_date: str,
        lines: list[SalesLine],
        currency: str = "USD",
        exchange_rate: Decimal | None = None,
        bill_email: str = "",
        private_note: str = "",
        terms: str = "3",
    ) -> None:
        super().__init__(
            entity_id,
            created,
            customer_id=customer_id,
            doc_number=doc_number,
            txn_date=txn_date,
            lines=lines,
            currency=currency,
            exchange_rate=exchange_rate,
            bill_email=bill_email,
            private_note=private_note,
        )
        self.due_date = due_date
        self.terms = terms
        self.email_status = "NotSet"
        self.balance = self.total

    def to_dict(self, tz: tzinfo, names: NameLookup) -> JsonObject:
        out = self._head()
        out["DocNumber"] = self.doc_number
        out["TxnDate"] = self.txn_date
        out["DueDate"] = self.due_date
        out["TotalAmt"] = money.to_json(self.total)
        out["Balance"] = money.to_json(self.balance)
        out["Deposit"] = 0
        out["CustomerRef"] = {
            "value": self.customer_id,
            "name": names.customer_name(self.customer_id),
        }
        if self.terms:
            out["SalesTermRef"] = {"value": self.terms}
        if self.bill_email:
            out["BillEmail"] = {"Address": self.bill_email}
        out["EmailStatus"] = self.email_status
        out["PrintStatus"] = "NeedToPrint"
        if self.private_note:
            out["PrivateNote"] = self.private_note
        if self.payment_ids:
            out["LinkedTxn"] = [{"TxnId": pid, "TxnType": "Payment"} for pid in self.payment_ids]
        else:
            out["LinkedTxn"] = []
        out["Line"] = self._lines_json()
        out["TxnTaxDetail"] = {"TotalTax": 0}
        self._money_fields(out, names, self.balance)
        out["ApplyTaxAfterDiscount"] = False
        out["MetaData"] = self._meta(tz)
        return out


class CreditMemo(_SalesTxn):
    __slots__ = ("remaining",)
    kind = CREDIT_MEMO

    def __init__(
        self,
        entity_id: str,
        created: float,
        *,
        customer_id: str,
        doc_number: str,
        txn_date: str,
        lines: list[SalesLine],
        currency: str = "USD",
        exchange_rate: Decimal | None = None,
        bill_email: str = "",
        private_note: str = "",
    ) -> None:
        super().__init__(
            entity_id,
            created,
            customer_id=customer_id,
            doc_number=doc_number,
            txn_date=txn_date,
            lines=lines,
            currency=currency,
            exchange_rate=exchange_rate,
            bill_email=bill_email,
            private_note=private_note,
        )
        self.remaining = self.total

    def to_dict(self, tz: tzinfo, names: NameLookup) -> JsonObject:
        out = self._head()
        out["DocNumber"] = self.doc_number
        out["TxnDate"] = self.txn_date
        out["TotalAmt"] = money.to_json(self.total)
        out["Balance"] = money.to_json(self.remaining)
        out["RemainingCredit"] = money.to_json(self.remaining)
        out["CustomerRef"] = {
            "value": self.customer_id,
            "name": names.customer_name(self.customer_id),
        }
        if self.bill_email:
            out["BillEmail"] = {"Address": self.bill_email}
        out["EmailStatus"] = "NotSet"
        out["PrintStatus"] = "NotSet"
        if self.private_note:
            out["PrivateNote"] = self.private_note
        out["Line"] = self._lines_json()
        out["TxnTaxDetail"] = {"TotalTax": 0}
        self._money_fields(out, names, self.remaining)
        out["MetaData"] = self._meta(tz)
        return out


@dataclass(slots=True)
class PaymentLine:
    """One application of a payment: to an invoice, or drawing on a credit memo."""

    amount: int
    txn_id: str
    txn_type: str  # "Invoice" or "CreditMemo"
    open_balance: int = 0  # the linked txn's open balance when the line was written
    ref_number: str = ""

    def to_dict(self) -> JsonObject:
        def name_value(name: str, value: str) -> JsonObject:
            return {
                "name": "{http://schema.intuit.com/finance/v3}NameValue",
                "nil": False,
                "value": {"Name": name, "Value": value},
                "declaredType": "com.intuit.schema.finance.v3.NameValue",
                "scope": "javax.xml.bind.JAXBElement$GlobalScope",
                "globalScope": True,
                "typeSubstituted": False,
            }

        extras = [
            name_value("txnId", self.txn_id),
            name_value("txnOpenBalance", money.to_text(self.open_balance)),
            name_value("txnReferenceNumber", self.ref_number),
        ]
        return {
            "Amount": money.to_json(self.amount),
            "LinkedTxn": [{"TxnId": self.txn_id, "TxnType": self.txn_type}],
            "LineEx": {"any": extras},
        }


class Payment(Entity):
    __slots__ = (
        "currency",
        "customer_id",
        "exchange_rate",
        "lines",
        "payment_method",
        "private_note",
        "ref_num",
        "total",
        "txn_date",
        "voided",
    )
    kind = PAYMENT

    def __init__(
        self,
        entity_id: str,
        created: float,
        *,
        customer_id: str,
        txn_date: str,
        total: int,
        lines: list[PaymentLine],
        currency: str = "USD",
        exchange_rate: Decimal | None = None,
        private_note: str = "",
        ref_num: str = "",
        payment_method: str = "",
    ) -> None:
        super().__init__(entity_id, created)
        self.customer_id = customer_id
        self.txn_date = txn_date
        self.total = total
        self.lines = lines
        self.currency = currency
        self.exchange_rate = exchange_rate
        self.private_note = private_note
        self.ref_num = ref_num
        self.payment_method = payment_method
        self.voided = False

    @property
    def unapplied(self) -> int:
        applied = sum(ln.amount for ln in self.lines if ln.txn_type == INVOICE)
        credits = sum(ln.amount for ln in self.lines if ln.txn_type == CREDIT_MEMO)
        return self.total - applied + credits

    def to_dict(self, tz: tzinfo, names: NameLookup) -> JsonObject:
        out = self._head()
        out["TxnDate"] = self.txn_date
        out["TotalAmt"] = money.to_json(self.total)
        out["UnappliedAmt"] = money.to_json(self.unapplied)
        out["ProcessPayment"] = False
        out["CustomerRef"] = {
            "value": self.customer_id,
            "name": names.customer_name(self.customer_id),
        }
        out["DepositToAccountRef"] = {"value": "4"}
        if self.payment_method:
            out["PaymentMethodRef"] = {"value": self.payment_method}
        if self.ref_num:
            out["PaymentRefNum"] = self.ref_num
        if self.private_note:
            out["PrivateNote"] = self.private_note
        out["Line"] = [line.to_dict() for line in self.lines]
        out["CurrencyRef"] = _currency_ref(self.currency)
        if names.multicurrency():
            rate = self.exchange_rate if self.exchange_rate is not None else Decimal(1)
            out["ExchangeRate"] = _rate_json(rate)
        out["MetaData"] = self._meta(tz)
        return out


@dataclass(slots=True)
class Tombstone:
    """A hard-deleted transaction, as CDC reports it."""

    kind: str
    id: str
    deleted_at: float

    def to_dict(self, tz: tzinfo) -> JsonObject:
        return {
            "domain": "QBO",
            "status": "Deleted",
            "Id": self.id,
            "MetaData": {"LastUpdatedTime": format_seconds(self.deleted_at, tz)},
        }


@dataclass(slots=True)
class Change:
    """One change a webhook reports: entity, id, operation and when."""

    realm_id: str
    kind: str
    entity_id: str
    operation: str  # Create, Update, Delete, Void
    at: float
    at_ns: int = field(default=0)
