"""QBO JSON -> contract messages, on Intuit's own sample data (shared/reference/intuit-qbo.md
section 7) and the shapes the emulator serves. Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.providers.qbo import mapping
from services.integration.sync.backfill import id_key

INVOICE: dict[str, Any] = {
    "Id": "130",
    "SyncToken": "0",
    "domain": "QBO",
    "sparse": False,
    "DocNumber": "1037",
    "TxnDate": "2014-09-19",
    "DueDate": "2014-10-19",
    "TotalAmt": 362.07,
    "Balance": 362.07,
    "Deposit": 0,
    "CustomerRef": {"name": "Sonnenschein Family Store", "value": "24"},
    "BillEmail": {"Address": "Familiystore@intuit.com"},
    "BillAddr": {
        "Line1": "Russ Sonnenschein",
        "Line2": "Sonnenschein Family Store",
        "Line3": "5647 Cypress Hill Ave.",
        "Line4": "Middlefield, CA 94303",
        "Id": "95",
    },
    "LinkedTxn": [{"TxnId": "100", "TxnType": "Estimate"}],
    "MetaData": {
        "CreateTime": "2014-09-19T13:16:17-07:00",
        "LastUpdatedTime": "2014-09-19T13:16:17-07:00",
    },
}
CUSTOMER: dict[str, Any] = {
    "Id": "2",
    "SyncToken": "0",
    "Active": True,
    "DisplayName": "Bill's Windsurf Shop",
    "CompanyName": "Bill's Windsurf Shop",
    "GivenName": "Bill",
    "FamilyName": "Lucchini",
    "PrimaryEmailAddr": {"Address": "Surf@Intuit.com"},
    "PrimaryPhone": {"FreeFormNumber": "(415) 444-6538"},
    "Mobile": {"FreeFormNumber": "(831) 330-1234"},
    "Fax": {"FreeFormNumber": ""},
    "BillAddr": {
        "Id": "3",
        "Line1": "12 Ocean Dr.",
        "City": "Half Moon Bay",
        "CountrySubDivisionCode": "CA",
        "PostalCode": "94213",
        "Lat": "37.4307072",
        "Long": "-122.4295234",
    },
}
PAYMENT: dict[str, Any] = {
    "Id": "163",
    "SyncToken": "0",
    "TxnDate": "2015-01-16",
    "TotalAmt": 65.0,
    "UnappliedAmt": 10.0,
    "CustomerRef": {"name": "Red Rock Diner", "value": "20"},
    "Line": [
        {
            "Amount": 55.0,
            "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}],
            "LineEx": {"any": [{"name": "x", "value": {"Name": "txnId", "Value": "70"}}]},
        }
    ],
    "MetaData": {
        "CreateTime": "2015-01-16T15:08:12-08:00",
        "LastUpdatedTime": "2015-01-16T15:08:12-08:00",
    },
}


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        (362.07, "USD", 36207),
        (0.1, "USD", 10),
        (0.3, "USD", 30),
        (275.0, "USD", 27500),
        (12, "USD", 1200),
        ("71.00", "USD", 7100),
        (Decimal("19.99"), "EUR", 1999),
        (1500, "JPY", 1500),
        (1.234, "KWD", 1234),
        (None, "USD", 0),
        (1e16 / 100, "USD", 10**16),
    ],
)
def test_amounts_become_minor_units_exactly(value: object, currency: str, minor: int) -> None:
    assert mapping.to_minor_units(value, currency) == minor


@pytest.mark.parametrize("value", [True, "abc", float("nan"), [1]])
def test_what_is_not_an_amount_is_refused(value: object) -> None:
    with pytest.raises(mapping.MappingError):
        mapping.to_minor_units(value, "USD")


def test_qbo_times() -> None:
    assert mapping.parse_qbo_time("2015-07-24T10:38:50.01-07:00").utcoffset() is not None
    assert mapping.parse_qbo_time("2026-01-15T18:04:05.123Z") == datetime(
        2026, 1, 15, 18, 4, 5, 123000, tzinfo=UTC
    )
    naive = mapping.parse_qbo_time("2016-01-01T00:00:00")
    assert naive.tzinfo is UTC
    with pytest.raises(mapping.MappingError):
        mapping.parse_qbo_time("yesterday")
    text = mapping.format_qbo_time(mapping.parse_qbo_time("2015-07-24T10:38:50.01-07:00"))
    assert text == "2015-07-24T10:38:50.010-07:00"


def test_invoice_facts_and_placement_input_from_intuits_sample() -> None:
    facts = mapping.invoice_facts(INVOICE)
    assert facts.currency == "USD"  # no CurrencyRef: the default
    assert facts.balance == facts.total == 36207
    assert facts.due_date == date(2014, 10, 19)
    assert facts.days_past_due(date(2014, 10, 29)) == 10
    assert facts.overdue(date(2014, 10, 20))
    assert not facts.overdue(date(2014, 10, 19))  # due today is not overdue yet

    item = mapping.placement_input(INVOICE, CUSTOMER)
    assert item.invoice_id == "130"
    assert item.doc_number == "1037"
    assert item.customer_id == "24"
    assert item.balance.minor_units == 36207
    assert item.total_amount.currency_code == "USD"
    assert item.invoice_date == "2014-09-19"
    assert item.due_date == "2014-10-19"
    assert item.version == "0"
    assert item.last_updated_time.ToDatetime(tzinfo=UTC) == datetime(
        2014, 9, 19, 20, 16, 17, tzinfo=UTC
    )
    assert item.debtor.display_name == "Bill's Windsurf Shop"

    # Without its customer, what the invoice itself says.
    fallback = mapping.placement_input(INVOICE, None).debtor
    assert fallback.display_name == "Sonnenschein Family Store"
    assert fallback.email == "Familiystore@intuit.com"
    assert list(fallback.billing_address.lines) == [
        "Russ Sonnenschein",
        "Sonnenschein Family Store",
        "5647 Cypress Hill Ave.",
        "Middlefield, CA 94303",
    ]


def test_debtor_contact_from_intuits_sample_customer() -> None:
    contact = mapping.debtor_contact(CUSTOMER)
    assert contact.display_name == "Bill's Windsurf Shop"
    assert contact.company_name == "Bill's Windsurf Shop"
    assert (contact.given_name, contact.family_name) == ("Bill", "Lucchini")
    assert contact.email == "Surf@Intuit.com"
    assert [(p.type, p.number) for p in contact.phones] == [
        (mpb.PHONE_TYPE_PRIMARY, "(415) 444-6538"),
        (mpb.PHONE_TYPE_MOBILE, "(831) 330-1234"),
    ]
    address = contact.billing_address
    assert list(address.lines) == ["12 Ocean Dr."]
    assert (address.city, address.region, address.postal_code) == ("Half Moon Bay", "CA", "94213")
    assert not contact.HasField("billing_address") or address.country == ""


def test_an_inactive_customer_keeps_its_name_and_contact() -> None:
    # QBO "deletes" a customer by making it inactive and appending " (deleted)" to its name.
    deleted = {**CUSTOMER, "Active": False, "DisplayName": "Bill's Windsurf Shop (deleted)"}
    contact = mapping.debtor_contact(deleted)
    assert contact.display_name == "Bill's Windsurf Shop"
    assert contact == mapping.debtor_contact(CUSTOMER)
    # An active customer's name is the bookkeeper's choice, whatever it ends with.
    chosen = mapping.debtor_contact({**CUSTOMER, "DisplayName": "Old Mill (deleted)"})
    assert chosen.display_name == "Old Mill (deleted)"


def test_invoice_states_for_apply_accounting_invoice() -> None:
    active = mapping.qbo_invoice({**INVOICE, "CurrencyRef": {"value": "CAD"}})
    assert active.state == mpb.ENTITY_STATE_ACTIVE
    assert active.balance.currency_code == "CAD"
    assert [(t.txn_id, t.txn_type) for t in active.linked_txns] == [
        ("100", mpb.LINKED_TXN_TYPE_OTHER)
    ]
    paid = mapping.qbo_invoice(
        {
            **INVOICE,
            "Balance": 0,
            "LinkedTxn": [
                {"TxnId": "7", "TxnType": "Payment"},
                {"TxnId": "8", "TxnType": "CREDIT_MEMO"},
                {"TxnId": "9", "TxnType": "JournalEntry"},
            ],
        }
    )
    assert [t.txn_type for t in paid.linked_txns] == [
        mpb.LINKED_TXN_TYPE_PAYMENT,
        mpb.LINKED_TXN_TYPE_CREDIT_MEMO,
        mpb.LINKED_TXN_TYPE_JOURNAL_ENTRY,
    ]
    voided = mapping.qbo_invoice(
        {**INVOICE, "TotalAmt": 0, "Balance": 0, "PrivateNote": "Voided", "SyncToken": "1"}
    )
    assert voided.state == mpb.ENTITY_STATE_VOIDED
    assert (voided.version, voided.version_sequence) == ("1", 1)
    # The SyncToken is the version and, as a number, its order; a token that is not a number
    # has no order (the matcher then compares the text).
    assert mapping.qbo_invoice({**INVOICE, "SyncToken": "12"}).version_sequence == 12
    assert mapping.qbo_invoice({**INVOICE, "SyncToken": "x1"}).version_sequence == 0
    assert mapping.qbo_payment({**PAYMENT, "SyncToken": "7"}).version_sequence == 7
    # A note that merely says "Voided" on a live invoice is not a void.
    assert mapping.qbo_invoice({**INVOICE, "PrivateNote": "Voided?"}).state == (
        mpb.ENTITY_STATE_ACTIVE
    )
    deleted = mapping.qbo_invoice(
        {
            "domain": "QBO",
            "status": "Deleted",
            "Id": "39",
            "MetaData": {"LastUpdatedTime": "2014-12-08T19:36:24-08:00"},
        }
    )
    assert deleted.state == mpb.ENTITY_STATE_DELETED
    assert deleted.invoice_id == "39"
    assert deleted.HasField("last_updated_time")
    assert not deleted.HasField("balance")


def test_payment_from_intuits_sample_and_its_void_and_delete() -> None:
    payment = mapping.qbo_payment(PAYMENT)
    assert payment.payment_id == "163"
    assert payment.txn_date == "2015-01-16"
    assert payment.total_amount.minor_units == 6500
    assert payment.unapplied_amount.minor_units == 1000
    assert payment.customer_id == "20"
    assert [(x.linked_txn_id, x.linked_txn_type, x.amount.minor_units) for x in payment.lines] == [
        ("70", mpb.LINKED_TXN_TYPE_INVOICE, 5500)
    ]
    assert payment.state == mpb.ENTITY_STATE_ACTIVE
    assert payment.HasField("create_time")
    credit = mapping.qbo_payment(
        {
            **PAYMENT,
            "TotalAmt": 0,
            "UnappliedAmt": 0,
            "Line": [
                {"Amount": 25.0, "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}]},
                {"Amount": 25.0, "LinkedTxn": [{"TxnId": "88", "TxnType": "CreditMemo"}]},
            ],
        }
    )
    assert [x.linked_txn_type for x in credit.lines] == [
        mpb.LINKED_TXN_TYPE_INVOICE,
        mpb.LINKED_TXN_TYPE_CREDIT_MEMO,
    ]
    voided = mapping.qbo_payment(
        {**PAYMENT, "TotalAmt": 0, "UnappliedAmt": 0, "Line": [], "PrivateNote": "Voided - chk"}
    )
    assert voided.state == mpb.ENTITY_STATE_VOIDED
    deleted = mapping.qbo_payment({"status": "Deleted", "domain": "QBO", "Id": "73"})
    assert deleted.state == mpb.ENTITY_STATE_DELETED
    assert deleted.payment_id == "73"
    assert mapping.linked_invoice_ids(PAYMENT) == ["70"]


def test_invoice_ids_order_as_numbers() -> None:
    assert sorted(["10", "9", "100", "11"], key=id_key) == ["9", "10", "11", "100"]


def test_placement_input_carries_the_payments_its_balance_reflects() -> None:
    """The placed version's LinkedTxn tells the matcher which payments are already inside
    the placed balance (never a comparison of one-second times)."""
    invoice = {
        **INVOICE,
        "Balance": 16207,
        "LinkedTxn": [
            {"TxnId": "7", "TxnType": "Payment"},
            {"TxnId": "9", "TxnType": "CreditMemo"},
        ],
    }
    item = mapping.placement_input(invoice, CUSTOMER)
    assert [(t.txn_id, t.txn_type) for t in item.linked_txns] == [
        ("7", mpb.LINKED_TXN_TYPE_PAYMENT),
        ("9", mpb.LINKED_TXN_TYPE_CREDIT_MEMO),
    ]
