"""A QBO company (realm) and the bookkeeper's actions on it.

Every action keeps ``Invoice.Balance``, ``Invoice.LinkedTxn``, ``Payment.UnappliedAmt``
and ``CreditMemo.RemainingCredit`` consistent the way QBO does, bumps ``SyncToken`` and
``LastUpdatedTime`` of everything it changes, and reports each change (for webhooks).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from emulators.common.clock import Clock, TenantClock, zone
from emulators.qbo.model import (
    CREDIT_MEMO,
    CUSTOMER,
    INVOICE,
    PAYMENT,
    Address,
    Change,
    CreditMemo,
    Customer,
    Entity,
    Invoice,
    NameLookup,
    Payment,
    PaymentLine,
    SalesLine,
    Tombstone,
)

CREATE = "Create"
UPDATE = "Update"
DELETE = "Delete"
VOID = "Void"


class BookError(Exception):
    """A bookkeeping action QBO would refuse; rendered as an Intuit-style error."""

    def __init__(self, status: int, message: str, *, code: str = "6000", detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail or message


def not_found(kind: str, entity_id: str) -> BookError:
    return BookError(
        400,
        "Object Not Found",
        code="610",
        detail=f"Object Not Found : Something you're trying to use has been made inactive. "
        f"Check the fields with accounts, customers, items, vendors or employees. "
        f"({kind} {entity_id})",
    )


@dataclass(frozen=True, slots=True)
class Application:
    """A payment line as requested: apply ``amount`` cents to an invoice or credit memo."""

    txn_type: str  # "Invoice" or "CreditMemo"
    txn_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class Links:
    affected: set[tuple[str, str]]  # (txn type, id) linked before or after a change
    relinked: set[tuple[str, str]]  # linked before or after, not both


def _voided_note(note: str) -> str:
    return f"Voided - {note}" if note else "Voided"


class Company(TenantClock, NameLookup):
    """One realm's books."""

    def __init__(
        self,
        realm_id: str,
        name: str,
        clock: Clock,
        *,
        country: str = "US",
        timezone: str = "America/Los_Angeles",
        home_currency: str = "USD",
        multicurrency: bool = False,
        today: date | None = None,
    ) -> None:
        # The company's own clock: the emulator's, shifted so that "today" can be pinned.
        super().__init__(clock, zone(timezone), today)
        self.realm_id = realm_id
        self.name = name
        self.country = country
        self.timezone = timezone
        self.home_currency = home_currency
        self.is_multicurrency = multicurrency
        self.created = self.now()
        self.customers: dict[str, Customer] = {}
        self.invoices: dict[str, Invoice] = {}
        self.payments: dict[str, Payment] = {}
        self.credit_memos: dict[str, CreditMemo] = {}
        self.tombstones: dict[str, dict[str, Tombstone]] = {
            INVOICE: {},
            PAYMENT: {},
            CREDIT_MEMO: {},
        }
        self._by_customer: dict[str, dict[str, set[str]]] = {}
        self.version = 0
        self._next_customer_id = 1
        self._next_txn_id = 1
        self._next_doc_number = 1001
        self.on_change: Callable[[Change], None] | None = None
        self.prerendered = False  # set once generated entities' JSON is cached

    # -- clock and naming -------------------------------------------------------------

    def set_timezone(self, name: str) -> None:
        self.move_to_zone(zone(name))
        self.timezone = name
        for table in self.tables():
            for entity in table.values():
                entity.invalidate()
        self.version += 1

    def customer_name(self, customer_id: str) -> str:
        customer = self.customers.get(customer_id)
        return customer.display_name if customer is not None else ""

    def multicurrency(self) -> bool:
        return self.is_multicurrency

    def tables(self) -> Iterator[dict[str, Any]]:
        yield self.customers
        yield self.invoices
        yield self.payments
        yield self.credit_memos

    def table(self, kind: str) -> dict[str, Any]:
        tables: dict[str, dict[str, Any]] = {
            CUSTOMER: self.customers,
            INVOICE: self.invoices,
            PAYMENT: self.payments,
            CREDIT_MEMO: self.credit_memos,
        }
        return tables[kind]

    def get(self, kind: str, entity_id: str) -> Entity:
        entity: Entity | None = self.table(kind).get(entity_id)
        if entity is None:
            raise not_found(kind, entity_id)
        return entity

    # -- id sequences -------------------------------------------------------------------

    def new_customer_id(self) -> str:
        value = self._next_customer_id
        self._next_customer_id += 1
        return str(value)

    def new_txn_id(self) -> str:
        value = self._next_txn_id
        self._next_txn_id += 1
        return str(value)

    def new_doc_number(self) -> str:
        value = self._next_doc_number
        self._next_doc_number += 1
        return str(value)

    # -- change reporting -------------------------------------------------------------

    def _emit(self, entity: Entity, operation: str, at: float) -> None:
        self.version += 1
        listener = self.on_change
        if listener is not None:
            listener(Change(self.realm_id, entity.kind, entity.id, operation, at))

    def _emit_deleted(self, kind: str, entity_id: str, at: float) -> None:
        self.version += 1
        listener = self.on_change
        if listener is not None:
            listener(Change(self.realm_id, kind, entity_id, DELETE, at))

    def _index(self, customer_id: str, kind: str) -> set[str]:
        per_kind = self._by_customer.setdefault(customer_id, {})
        return per_kind.setdefault(kind, set())

    def _refresh_customer_balance(self, customer_id: str) -> None:
        customer = self.customers.get(customer_id)
        if customer is None:
            return
        per_kind = self._by_customer.get(customer_id, {})
        balance = sum(self.invoices[i].balance for i in per_kind.get(INVOICE, ()))
        balance -= sum(self.credit_memos[c].remaining for c in per_kind.get(CREDIT_MEMO, ()))
        balance -= sum(self.payments[p].unapplied for p in per_kind.get(PAYMENT, ()))
        if balance != customer.balance:
            customer.balance = balance
            customer.invalidate()

    # -- loading (the generator uses these; no events) ---------------------------------

    def load_customer(self, customer: Customer) -> None:
        self.customers[customer.id] = customer
        self._by_customer.setdefault(customer.id, {})
        self._next_customer_id = max(self._next_customer_id, int(customer.id) + 1)
        self.version += 1

    def load_invoice(self, invoice: Invoice) -> None:
        self.invoices[invoice.id] = invoice
        self._index(invoice.customer_id, INVOICE).add(invoice.id)
        self._next_txn_id = max(self._next_txn_id, int(invoice.id) + 1)
        if invoice.doc_number.isdigit():
            self._next_doc_number = max(self._next_doc_number, int(invoice.doc_number) + 1)
        self.version += 1

    def refresh_all_customer_balances(self) -> None:
        for customer_id in self.customers:
            self._refresh_customer_balance(customer_id)

    # -- customers ----------------------------------------------------------------------

    def add_customer(
        self,
        *,
        display_name: str,
        given_name: str = "",
        family_name: str = "",
        company_name: str = "",
        email: str = "",
        phone: str = "",
        mobile: str = "",
        address: Address | None = None,
        currency: str | None = None,
        notes: str = "",
    ) -> Customer:
        if not display_name.strip():
            raise BookError(400, "Required param missing", code="2020", detail="DisplayName")
        self._check_unique_name(display_name, None)
        currency = currency or self.home_currency
        self._check_currency(currency)
        now = self.now()
        customer = Customer(
            self.new_customer_id(),
            now,
            display_name=display_name,
            given_name=given_name,
            family_name=family_name,
            company_name=company_name,
            email=email,
            phone=phone,
            mobile=mobile,
            address=address,
            currency=currency,
            notes=notes,
        )
        self.customers[customer.id] = customer
        self._by_customer[customer.id] = {}
        self._emit(customer, CREATE, now)
        return customer

    def _check_unique_name(self, display_name: str, exclude: str | None) -> None:
        for other in self.customers.values():
            if other.id != exclude and other.display_name == display_name:
                raise BookError(
                    400,
                    "Duplicate Name Exists Error",
                    code="6240",
                    detail=f"The name supplied already exists. : Id={other.id}",
                )

    def _check_currency(self, currency: str) -> None:
        if currency != self.home_currency and not self.is_multicurrency:
            raise BookError(
                400,
                "Business Validation Error",
                detail=f"Multicurrency is off: {currency} is not {self.home_currency}",
            )

    def update_customer(self, customer_id: str, changes: dict[str, Any]) -> Customer:
        customer = self._customer(customer_id)
        now = self.now()
        renamed = False
        for key, value in changes.items():
            if key == "display_name":
                name = str(value)
                if not name.strip():
                    raise BookError(
                        400, "Required param missing", code="2020", detail="DisplayName"
                    )
                self._check_unique_name(name, customer.id)
                renamed = name != customer.display_name
                customer.display_name = name
            elif key in {
                "given_name",
                "family_name",
                "company_name",
                "email",
                "phone",
                "mobile",
                "notes",
            }:
                setattr(customer, key, str(value))
            elif key == "address":
                customer.address = Address.from_dict(value) if value else None
            elif key == "active":
                customer.active = bool(value)
            else:
                raise BookError(400, f"unknown customer field {key!r}", code="2010")
        customer.touch(now)
        if renamed:
            for kind in (INVOICE, PAYMENT, CREDIT_MEMO):
                table = self.table(kind)
                for txn_id in self._index(customer.id, kind):
                    table[txn_id].invalidate()
        self._emit(customer, UPDATE, now)
        return customer

    def delete_customer(self, customer_id: str) -> Customer:
        """QBO never hard-deletes a customer: it turns inactive and is renamed."""
        customer = self._customer(customer_id)
        if customer.balance != 0:
            raise BookError(
                400,
                "Business Validation Error",
                detail="You can't make a customer with an open balance inactive",
            )
        now = self.now()
        customer.active = False
        customer.display_name = f"{customer.display_name} (deleted)"
        customer.touch(now)
        self._emit(customer, DELETE, now)
        return customer

    def _customer(self, customer_id: str) -> Customer:
        customer = self.customers.get(customer_id)
        if customer is None:
            raise not_found(CUSTOMER, customer_id)
        return customer

    def _active_customer(self, customer_id: str) -> Customer:
        customer = self._customer(customer_id)
        if not customer.active:
            raise not_found(CUSTOMER, customer_id)
        return customer

    # -- invoices -----------------------------------------------------------------------

    def add_invoice(
        self,
        *,
        customer_id: str,
        lines: list[SalesLine],
        txn_date: date | None = None,
        due_date: date | None = None,
        doc_number: str | None = None,
        exchange_rate: Decimal | None = None,
        private_note: str = "",
        terms_days: int = 30,
    ) -> Invoice:
        customer = self._active_customer(customer_id)
        self._check_lines(lines)
        txn = txn_date or self.today()
        due = due_date or txn + timedelta(days=terms_days)
        if due < txn:
            raise BookError(400, "Business Validation Error", detail="DueDate is before TxnDate")
        now = self.now()
        invoice = Invoice(
            self.new_txn_id(),
            now,
            customer_id=customer.id,
            doc_number=doc_number or self.new_doc_number(),
            txn_date=txn.isoformat(),
            due_date=due.isoformat(),
            lines=lines,
            currency=customer.currency,
            exchange_rate=self._rate(customer.currency, exchange_rate),
            bill_email=customer.email,
            private_note=private_note,
        )
        self.invoices[invoice.id] = invoice
        self._index(customer.id, INVOICE).add(invoice.id)
        self._emit(invoice, CREATE, now)
        self._refresh_customer_balance(customer.id)
        return invoice

    def _rate(self, currency: str, rate: Decimal | None) -> Decimal | None:
        if not self.is_multicurrency:
            return None
        if currency == self.home_currency:
            return Decimal(1)
        if rate is None or rate <= 0:
            raise BookError(
                400, "Business Validation Error", detail=f"ExchangeRate is required for {currency}"
            )
        return rate

    @staticmethod
    def _check_lines(lines: list[SalesLine]) -> None:
        if not lines:
            raise BookError(400, "Required param missing", code="2020", detail="Line")
        for line in lines:
            if line.amount <= 0 or line.qty <= 0:
                raise BookError(
                    400, "Business Validation Error", detail="Line amounts and Qty must be positive"
                )

    def _invoice(self, invoice_id: str) -> Invoice:
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise not_found(INVOICE, invoice_id)
        return invoice

    def update_invoice(
        self,
        invoice_id: str,
        *,
        due_date: date | None = None,
        lines: list[SalesLine] | None = None,
        private_note: str | None = None,
    ) -> Invoice:
        invoice = self._invoice(invoice_id)
        if invoice.voided:
            raise BookError(
                400, "Business Validation Error", detail="A voided invoice can't be edited"
            )
        if lines is not None:
            self._check_lines(lines)
            paid = invoice.total - invoice.balance
            if sum(line.amount for line in lines) < paid:
                raise BookError(
                    400,
                    "Business Validation Error",
                    detail="The new total is less than the payments already applied",
                )
        now = self.now()
        if due_date is not None:
            if due_date.isoformat() < invoice.txn_date:
                raise BookError(
                    400, "Business Validation Error", detail="DueDate is before TxnDate"
                )
            invoice.due_date = due_date.isoformat()
        if lines is not None:
            invoice.lines = lines
            self._recompute_invoice(invoice)
        if private_note is not None:
            invoice.private_note = private_note
        invoice.touch(now)
        self._emit(invoice, UPDATE, now)
        self._refresh_customer_balance(invoice.customer_id)
        return invoice

    def void_invoice(self, invoice_id: str) -> Invoice:
        """Zero the invoice; payments on it become unapplied, credit memos regain their credit."""
        invoice = self._invoice(invoice_id)
        if invoice.voided:
            raise BookError(
                400, "Business Validation Error", detail="The invoice is already voided"
            )
        now = self.now()
        touched_memos: set[str] = set()
        for payment_id in list(invoice.payment_ids):
            payment = self.payments[payment_id]
            freed = sum(ln.amount for ln in payment.lines if ln.txn_id == invoice.id)
            kept = [ln for ln in payment.lines if ln.txn_id != invoice.id]
            # A credit memo drawn on by this payment gets its credit back first.
            for drawn in kept:
                if freed and drawn.txn_type == CREDIT_MEMO:
                    take = min(freed, drawn.amount)
                    drawn.amount -= take
                    freed -= take
                    touched_memos.add(drawn.txn_id)
            self._set_payment_lines(payment, [ln for ln in kept if ln.amount > 0])
            payment.touch(now)
            self._emit(payment, UPDATE, now)
        invoice.payment_ids.clear()
        for line in invoice.lines:
            line.amount = 0
            line.qty = 0
        invoice.balance = 0
        invoice.private_note = _voided_note(invoice.private_note)
        invoice.voided = True
        invoice.touch(now)
        self._emit(invoice, VOID, now)
        for memo_id in sorted(touched_memos, key=int):
            memo = self.credit_memos[memo_id]
            self._recompute_memo(memo)
            memo.touch(now)
            self._emit(memo, UPDATE, now)
        self._refresh_customer_balance(invoice.customer_id)
        return invoice

    def delete_invoice(self, invoice_id: str) -> Tombstone:
        invoice = self._invoice(invoice_id)
        if invoice.payment_ids:
            raise BookError(
                400,
                "Business Validation Error",
                detail="You can't delete this transaction because it has linked transactions "
                f"(payments {', '.join(invoice.payment_ids)}). Unlink them first.",
            )
        now = self.now()
        del self.invoices[invoice.id]
        self._index(invoice.customer_id, INVOICE).discard(invoice.id)
        tomb = Tombstone(INVOICE, invoice.id, now)
        self.tombstones[INVOICE][invoice.id] = tomb
        self._emit_deleted(INVOICE, invoice.id, now)
        self._refresh_customer_balance(invoice.customer_id)
        return tomb

    # -- payments -----------------------------------------------------------------------

    def add_payment(
        self,
        *,
        customer_id: str,
        total: int,
        applications: Iterable[Application] = (),
        txn_date: date | None = None,
        private_note: str = "",
        ref_num: str = "",
        payment_method: str = "",
        exchange_rate: Decimal | None = None,
    ) -> Payment:
        customer = self._active_customer(customer_id)
        if total < 0:
            raise BookError(400, "Business Validation Error", detail="TotalAmt can't be negative")
        now = self.now()
        payment = Payment(
            self.new_txn_id(),
            now,
            customer_id=customer.id,
            txn_date=(txn_date or self.today()).isoformat(),
            total=total,
            lines=[],
            currency=customer.currency,
            exchange_rate=self._rate(customer.currency, exchange_rate),
            private_note=private_note,
            ref_num=ref_num,
            payment_method=payment_method,
        )
        lines = self._build_lines(payment, list(applications))
        self.payments[payment.id] = payment
        self._index(customer.id, PAYMENT).add(payment.id)
        self._emit(payment, CREATE, now)
        self._apply_lines(payment, lines, now)
        return payment

    def _payment(self, payment_id: str) -> Payment:
        payment = self.payments.get(payment_id)
        if payment is None:
            raise not_found(PAYMENT, payment_id)
        return payment

    def _build_lines(self, payment: Payment, applications: list[Application]) -> list[PaymentLine]:
        """Validate requested applications against what is open, ignoring this payment's own."""
        seen: set[tuple[str, str]] = set()
        lines: list[PaymentLine] = []
        applied = credits = 0
        for app in applications:
            key = (app.txn_type, app.txn_id)
            if key in seen:
                raise BookError(
                    400, "Business Validation Error", detail=f"{app.txn_type} {app.txn_id} twice"
                )
            seen.add(key)
            if app.amount <= 0:
                raise BookError(
                    400, "Business Validation Error", detail="Line amounts must be positive"
                )
            own = sum(ln.amount for ln in payment.lines if (ln.txn_type, ln.txn_id) == key)
            if app.txn_type == INVOICE:
                invoice = self._invoice(app.txn_id)
                txn_customer, currency, open_amount = (
                    invoice.customer_id,
                    invoice.currency,
                    invoice.balance + own,
                )
                ref = invoice.doc_number
                applied += app.amount
            elif app.txn_type == CREDIT_MEMO:
                memo = self.credit_memos.get(app.txn_id)
                if memo is None:
                    raise not_found(CREDIT_MEMO, app.txn_id)
                txn_customer, currency, open_amount = (
                    memo.customer_id,
                    memo.currency,
                    memo.remaining + own,
                )
                ref = memo.doc_number
                credits += app.amount
            else:
                raise BookError(
                    400, "Business Validation Error", detail=f"can't link {app.txn_type}"
                )
            if txn_customer != payment.customer_id:
                raise BookError(
                    400,
                    "Business Validation Error",
                    detail=f"{app.txn_type} {app.txn_id} belongs to another customer",
                )
            if currency != payment.currency:
                raise BookError(
                    400, "Business Validation Error", detail="Currency of linked txn differs"
                )
            if app.amount > open_amount:
                raise BookError(
                    400,
                    "Business Validation Error",
                    detail=f"{app.txn_type} {app.txn_id}: amount exceeds the open balance "
                    f"({open_amount / 100:.2f})",
                )
            lines.append(PaymentLine(app.amount, app.txn_id, app.txn_type, open_amount, ref))
        if payment.total - applied + credits < 0:
            raise BookError(
                400,
                "Business Validation Error",
                detail="The amounts applied exceed the payment total",
            )
        return lines

    def _set_payment_lines(self, payment: Payment, lines: list[PaymentLine]) -> Links:
        """Replace the lines and the back-links; say which txns were or are linked."""
        before = {(ln.txn_type, ln.txn_id) for ln in payment.lines}
        after = {(ln.txn_type, ln.txn_id) for ln in lines}
        payment.lines = lines
        for kind, txn_id in before - after:
            txn = self.invoices.get(txn_id) if kind == INVOICE else self.credit_memos.get(txn_id)
            if txn is not None and payment.id in txn.payment_ids:
                txn.payment_ids.remove(payment.id)
        for kind, txn_id in after - before:
            target = self.invoices[txn_id] if kind == INVOICE else self.credit_memos[txn_id]
            target.payment_ids.append(payment.id)
        return Links(affected=before | after, relinked=before ^ after)

    def _apply_lines(self, payment: Payment, lines: list[PaymentLine], now: float) -> None:
        self._settle(self._set_payment_lines(payment, lines), now)
        self._refresh_customer_balance(payment.customer_id)

    def _settle(self, links: Links, now: float) -> None:
        """Recompute balances of linked invoices and credit memos; report those that changed.

        A txn changed when its balance moved or its ``LinkedTxn`` gained or lost a payment.
        """
        for kind, txn_id in sorted(links.affected, key=lambda k: (k[0] != INVOICE, int(k[1]))):
            txn: Invoice | CreditMemo | None
            if kind == INVOICE:
                txn = self.invoices.get(txn_id)
                if txn is None:
                    continue
                before = txn.balance
                self._recompute_invoice(txn)
                after = txn.balance
            else:
                txn = self.credit_memos.get(txn_id)
                if txn is None:
                    continue
                before = txn.remaining
                self._recompute_memo(txn)
                after = txn.remaining
            if before != after or (kind, txn_id) in links.relinked:
                txn.touch(now)
                self._emit(txn, UPDATE, now)

    def _recompute_invoice(self, invoice: Invoice) -> None:
        applied = 0
        for payment_id in invoice.payment_ids:
            for line in self.payments[payment_id].lines:
                if line.txn_type == INVOICE and line.txn_id == invoice.id:
                    applied += line.amount
        invoice.balance = invoice.total - applied

    def _recompute_memo(self, memo: CreditMemo) -> None:
        used = 0
        for payment_id in memo.payment_ids:
            for line in self.payments[payment_id].lines:
                if line.txn_type == CREDIT_MEMO and line.txn_id == memo.id:
                    used += line.amount
        memo.remaining = memo.total - used

    def update_payment(
        self,
        payment_id: str,
        *,
        total: int | None = None,
        applications: list[Application] | None = None,
        private_note: str | None = None,
        txn_date: date | None = None,
    ) -> Payment:
        payment = self._payment(payment_id)
        if payment.voided:
            raise BookError(
                400, "Business Validation Error", detail="A voided payment can't be edited"
            )
        old_total = payment.total
        if total is not None:
            if total < 0:
                raise BookError(
                    400, "Business Validation Error", detail="TotalAmt can't be negative"
                )
            payment.total = total
        try:
            if applications is None:
                applications = [
                    Application(ln.txn_type, ln.txn_id, ln.amount) for ln in payment.lines
                ]
            lines = self._build_lines(payment, applications)
        except BookError:
            payment.total = old_total
            raise
        now = self.now()
        if private_note is not None:
            payment.private_note = private_note
        if txn_date is not None:
            payment.txn_date = txn_date.isoformat()
        payment.touch(now)
        self._emit(payment, UPDATE, now)
        self._apply_lines(payment, lines, now)
        return payment

    def void_payment(self, payment_id: str) -> Payment:
        payment = self._payment(payment_id)
        if payment.voided:
            raise BookError(
                400, "Business Validation Error", detail="The payment is already voided"
            )
        now = self.now()
        payment.total = 0
        payment.private_note = _voided_note(payment.private_note)
        payment.voided = True
        payment.touch(now)
        self._emit(payment, VOID, now)
        self._apply_lines(payment, [], now)
        return payment

    def delete_payment(self, payment_id: str) -> Tombstone:
        payment = self._payment(payment_id)
        now = self.now()
        links = self._set_payment_lines(payment, [])
        del self.payments[payment.id]
        self._index(payment.customer_id, PAYMENT).discard(payment.id)
        tomb = Tombstone(PAYMENT, payment.id, now)
        self.tombstones[PAYMENT][payment.id] = tomb
        self._emit_deleted(PAYMENT, payment.id, now)
        self._settle(links, now)
        self._refresh_customer_balance(payment.customer_id)
        return tomb

    # -- credit memos -------------------------------------------------------------------

    def add_credit_memo(
        self,
        *,
        customer_id: str,
        lines: list[SalesLine],
        txn_date: date | None = None,
        private_note: str = "",
        exchange_rate: Decimal | None = None,
    ) -> CreditMemo:
        customer = self._active_customer(customer_id)
        self._check_lines(lines)
        now = self.now()
        memo = CreditMemo(
            self.new_txn_id(),
            now,
            customer_id=customer.id,
            doc_number=self.new_doc_number(),
            txn_date=(txn_date or self.today()).isoformat(),
            lines=lines,
            currency=customer.currency,
            exchange_rate=self._rate(customer.currency, exchange_rate),
            bill_email=customer.email,
            private_note=private_note,
        )
        self.credit_memos[memo.id] = memo
        self._index(customer.id, CREDIT_MEMO).add(memo.id)
        self._emit(memo, CREATE, now)
        self._refresh_customer_balance(customer.id)
        return memo

    def _memo(self, memo_id: str) -> CreditMemo:
        memo = self.credit_memos.get(memo_id)
        if memo is None:
            raise not_found(CREDIT_MEMO, memo_id)
        return memo

    def apply_credit_memo(
        self, memo_id: str, invoice_id: str, amount: int | None = None
    ) -> Payment:
        """QBO records an applied credit as a zero-total Payment linking invoice and memo."""
        memo = self._memo(memo_id)
        invoice = self._invoice(invoice_id)
        if memo.voided:
            raise BookError(400, "Business Validation Error", detail="The credit memo is voided")
        if amount is None:
            amount = min(memo.remaining, invoice.balance)
        return self.add_payment(
            customer_id=memo.customer_id,
            total=0,
            applications=[
                Application(INVOICE, invoice.id, amount),
                Application(CREDIT_MEMO, memo.id, amount),
            ],
            exchange_rate=memo.exchange_rate,
        )

    def void_credit_memo(self, memo_id: str) -> CreditMemo:
        memo = self._memo(memo_id)
        if memo.voided:
            raise BookError(
                400, "Business Validation Error", detail="The credit memo is already voided"
            )
        self._refuse_if_linked(memo)
        now = self.now()
        for line in memo.lines:
            line.amount = 0
            line.qty = 0
        memo.remaining = 0
        memo.private_note = _voided_note(memo.private_note)
        memo.voided = True
        memo.touch(now)
        self._emit(memo, VOID, now)
        self._refresh_customer_balance(memo.customer_id)
        return memo

    def delete_credit_memo(self, memo_id: str) -> Tombstone:
        memo = self._memo(memo_id)
        self._refuse_if_linked(memo)
        now = self.now()
        del self.credit_memos[memo.id]
        self._index(memo.customer_id, CREDIT_MEMO).discard(memo.id)
        tomb = Tombstone(CREDIT_MEMO, memo.id, now)
        self.tombstones[CREDIT_MEMO][memo.id] = tomb
        self._emit_deleted(CREDIT_MEMO, memo.id, now)
        self._refresh_customer_balance(memo.customer_id)
        return tomb

    @staticmethod
    def _refuse_if_linked(memo: CreditMemo) -> None:
        if memo.payment_ids:
            raise BookError(
                400,
                "Business Validation Error",
                detail="You can't change this transaction because it has linked transactions "
                f"(payments {', '.join(memo.payment_ids)}). Unlink them first.",
            )

    # -- summaries ----------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        today = self.today().isoformat()
        open_invoices = [i for i in self.invoices.values() if i.balance > 0]
        return {
            "realm_id": self.realm_id,
            "name": self.name,
            "country": self.country,
            "timezone": self.timezone,
            "today": today,
            "home_currency": self.home_currency,
            "multicurrency": self.is_multicurrency,
            "prerendered": self.prerendered,
            "counts": {
                "customers": len(self.customers),
                "invoices": len(self.invoices),
                "payments": len(self.payments),
                "credit_memos": len(self.credit_memos),
                "open_invoices": len(open_invoices),
                "overdue_invoices": sum(1 for i in open_invoices if i.due_date < today),
            },
        }
