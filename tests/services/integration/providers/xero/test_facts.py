"""Xero's JSON -> accounting facts, its webhook payloads and its errors, as pure functions
(no I/O): money in minor units, dates as the organisation's calendar dates, statuses as
deletes and voids, the version, and what each error means to the core."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime

import pytest
from multidict import CIMultiDict

from aicollect.errors import InvalidArgument, Unauthenticated
from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.providers.base import FailureKind
from services.integration.providers.xero import facts
from services.integration.providers.xero.api import XeroThrottled, classify
from services.integration.providers.xero.oauth import token_claims
from services.integration.providers.xero.platform import classify_failure
from services.integration.providers.xero.webhooks import parse_payload, sign, verify_signature

UPDATED_MS = 1_767_225_600_123  # 2026-01-01T00:00:00.123Z


def _invoice(**changes: object) -> dict[str, object]:
    invoice: dict[str, object] = {
        "Type": "ACCREC",
        "InvoiceID": "a1b2c3d4-0000-4000-8000-000000000001",
        "InvoiceNumber": "INV-0042",
        "Contact": {"ContactID": "c0000000-0000-4000-8000-000000000009", "Name": "Ada Lopez"},
        "DateString": "2026-05-31T00:00:00",
        "Date": "/Date(1780185600000+0000)/",
        "DueDateString": "2026-06-30T00:00:00",
        "DueDate": "/Date(1782777600000+0000)/",
        "Status": "AUTHORISED",
        "Total": 500.1,
        "AmountDue": 300.05,
        "AmountPaid": 200.05,
        "CurrencyCode": "NZD",
        "UpdatedDateUTC": f"/Date({UPDATED_MS}+0000)/",
        "Payments": [{"PaymentID": "p1", "Amount": 200.05}],
        "CreditNotes": [{"CreditNoteID": "n1", "AppliedAmount": 10}],
        "Overpayments": [{"OverpaymentID": "o1", "AppliedAmount": 5}],
    }
    invoice.update(changes)
    return invoice


def test_an_invoice_becomes_facts_in_minor_units_and_calendar_dates() -> None:
    got = facts.invoice_facts(_invoice())
    assert (got.invoice_id, got.doc_number, got.customer_name) == (
        "a1b2c3d4-0000-4000-8000-000000000001",
        "INV-0042",
        "Ada Lopez",
    )
    assert (got.currency, got.total, got.balance) == ("NZD", 50010, 30005)
    assert got.due_date == date(2026, 6, 30)  # the date as written, never shifted
    assert got.txn_date == date(2026, 5, 31)
    assert got.overdue(date(2026, 7, 1))
    assert not got.overdue(date(2026, 6, 30))


def test_the_version_is_updated_date_utc_in_milliseconds() -> None:
    message = facts.to_invoice(_invoice())
    assert message.version == str(UPDATED_MS)
    later = facts.to_invoice(_invoice(UpdatedDateUTC=f"/Date({UPDATED_MS + 1})/"))
    assert int(later.version) > int(message.version)
    # The same milliseconds are the order the matcher compares versions by.
    assert (message.version_sequence, later.version_sequence) == (UPDATED_MS, UPDATED_MS + 1)
    assert message.last_updated_time.ToDatetime(UTC) == datetime(2026, 1, 1, 0, 0, 0, 123000, UTC)
    # Without the /Date()/ form, the ISO companion gives the same instant (to the second).
    iso = _invoice(UpdatedDateUTC=None, UpdatedDateUTCString="2026-01-01T00:00:00Z")
    assert facts.version(iso) == str(UPDATED_MS - 123)


def test_links_say_payment_for_money_and_credit_memo_for_credit() -> None:
    message = facts.to_invoice(_invoice())
    assert [(t.txn_id, t.txn_type) for t in message.linked_txns] == [
        ("p1", mpb.LINKED_TXN_TYPE_PAYMENT),
        ("n1", mpb.LINKED_TXN_TYPE_CREDIT_MEMO),
        ("o1", mpb.LINKED_TXN_TYPE_PAYMENT),
    ]


@pytest.mark.parametrize(
    ("status", "kind", "balance", "state"),
    [
        ("AUTHORISED", "ACCREC", 30005, mpb.ENTITY_STATE_ACTIVE),
        ("PAID", "ACCREC", 30005, mpb.ENTITY_STATE_ACTIVE),
        ("DRAFT", "ACCREC", 0, mpb.ENTITY_STATE_ACTIVE),  # owes nothing yet
        ("AUTHORISED", "ACCPAY", 0, mpb.ENTITY_STATE_ACTIVE),  # a bill: not ours to collect
        ("VOIDED", "ACCREC", 0, mpb.ENTITY_STATE_VOIDED),
        ("DELETED", "ACCREC", 0, mpb.ENTITY_STATE_DELETED),
    ],
)
def test_statuses_become_balances_voids_and_deletes(
    status: str, kind: str, balance: int, state: int
) -> None:
    message = facts.to_invoice(_invoice(Status=status, Type=kind))
    assert message.state == state
    if state != mpb.ENTITY_STATE_DELETED:
        assert message.balance.minor_units == balance
    assert facts.is_deleted(_invoice(Status=status)) == (status == "DELETED")


def test_a_payment_is_one_line_on_its_invoice_and_deleted_is_a_delete() -> None:
    payment = {
        "PaymentID": "p1",
        "Amount": 120.5,
        "Date": "/Date(1780185600000+0000)/",
        "Status": "AUTHORISED",
        "UpdatedDateUTC": f"/Date({UPDATED_MS})/",
        "Invoice": {
            "InvoiceID": "i1",
            "CurrencyCode": "AUD",
            "Contact": {"ContactID": "c1"},
        },
    }
    message = facts.to_payment(payment)
    assert message.version_sequence == UPDATED_MS
    assert (message.payment_id, message.version, message.customer_id) == (
        "p1",
        str(UPDATED_MS),
        "c1",
    )
    assert message.total_amount.currency_code == "AUD"
    assert message.total_amount.minor_units == 12050
    assert [(line.linked_txn_id, line.amount.minor_units) for line in message.lines] == [
        ("i1", 12050)
    ]
    assert message.txn_date == "2026-05-31"
    deleted = facts.to_payment({**payment, "Status": "DELETED"})
    assert deleted.state == mpb.ENTITY_STATE_DELETED
    assert facts.linked_invoice_ids(payment) == ["i1"]


def _overpayment(**changes: object) -> dict[str, object]:
    overpayment: dict[str, object] = {
        "OverpaymentID": "o1",
        "Type": "RECEIVE-OVERPAYMENT",
        "Contact": {"ContactID": "c1"},
        "Date": "/Date(1780185600000+0000)/",
        "Status": "AUTHORISED",
        "Total": 500.0,
        "RemainingCredit": 500.0,
        "AppliedAmount": 0.0,
        "CurrencyCode": "NZD",
        "UpdatedDateUTC": f"/Date({UPDATED_MS}+0000)/",
        "Allocations": [],
    }
    overpayment.update(changes)
    return overpayment


def test_unallocated_overpayment_is_a_payment_with_its_remaining_credit_unapplied() -> None:
    message = facts.to_payment(_overpayment())
    assert (message.payment_id, message.customer_id) == ("o1", "c1")
    assert message.version == str(UPDATED_MS)
    assert (message.total_amount.minor_units, message.unapplied_amount.minor_units) == (
        50000,
        50000,
    )
    assert message.unapplied_amount.currency_code == "NZD"
    assert list(message.lines) == []
    assert message.state == mpb.ENTITY_STATE_ACTIVE
    prepayment = facts.to_payment(
        {**_overpayment(), "OverpaymentID": "", "PrepaymentID": "pp1", "RemainingCredit": 120.25}
    )
    assert (prepayment.payment_id, prepayment.unapplied_amount.minor_units) == ("pp1", 12025)


def test_an_allocation_moves_the_money_from_unapplied_to_a_line_on_the_invoice() -> None:
    allocated = _overpayment(
        Status="PAID",
        RemainingCredit=0.0,
        AppliedAmount=500.0,
        Allocations=[{"Amount": 500.0, "Invoice": {"InvoiceID": "i1"}}],
    )
    message = facts.to_payment(allocated)
    assert message.unapplied_amount.minor_units == 0  # counted once, on the invoice
    assert [(line.linked_txn_id, line.amount.minor_units) for line in message.lines] == [
        ("i1", 50000)
    ]
    assert facts.linked_invoice_ids(allocated) == ["i1"]
    part = facts.to_payment(
        _overpayment(
            RemainingCredit=300.0,
            AppliedAmount=200.0,
            Allocations=[{"Amount": 200.0, "Invoice": {"InvoiceID": "i1"}}],
        )
    )
    assert (part.unapplied_amount.minor_units, part.lines[0].amount.minor_units) == (30000, 20000)


def test_a_voided_or_deleted_overpayment_leaves_no_unapplied_money() -> None:
    voided = facts.to_payment(_overpayment(Status="VOIDED", RemainingCredit=0.0))
    assert voided.state == mpb.ENTITY_STATE_VOIDED
    assert voided.unapplied_amount.minor_units == 0
    # Whatever RemainingCredit a voided one shows, nothing is unapplied.
    assert facts.to_payment(_overpayment(Status="VOIDED")).unapplied_amount.minor_units == 0
    deleted = facts.to_payment(_overpayment(Status="DELETED"))
    assert deleted.state == mpb.ENTITY_STATE_DELETED
    # A supplier's (SPEND) overpayment is not money a debtor paid us.
    spend = facts.to_payment(_overpayment(Type="SPEND-OVERPAYMENT"))
    assert spend.unapplied_amount.minor_units == 0
    older = facts.to_payment(_overpayment(Type="AROVERPAYMENT"))
    assert older.unapplied_amount.minor_units == 50000


def test_a_credit_notes_allocations_name_the_invoices_to_re_read() -> None:
    note = {
        "CreditNoteID": "n1",
        "Allocations": [{"Invoice": {"InvoiceID": "i1"}}, {"Invoice": {"InvoiceID": "i2"}}],
    }
    assert facts.linked_invoice_ids(note) == ["i1", "i2"]


def test_a_contact_becomes_the_debtors_details() -> None:
    contact = {
        "ContactID": "c1",
        "Name": "Ada Lopez",
        "FirstName": "Ada",
        "LastName": "Lopez",
        "EmailAddress": "ada@debtor.test",
        "Phones": [
            {"PhoneType": "MOBILE", "PhoneNumber": "555 0101", "PhoneCountryCode": "64"},
            {"PhoneType": "FAX", "PhoneNumber": ""},
        ],
        "Addresses": [
            {"AddressType": "STREET", "AddressLine1": "1 Street"},
            {"AddressType": "POBOX", "AddressLine1": "PO Box 9", "City": "Wellington"},
        ],
    }
    debtor = facts.debtor_contact(contact)
    assert (debtor.display_name, debtor.given_name, debtor.family_name, debtor.email) == (
        "Ada Lopez",
        "Ada",
        "Lopez",
        "ada@debtor.test",
    )
    assert [(p.type, p.number) for p in debtor.phones] == [(mpb.PHONE_TYPE_MOBILE, "64 555 0101")]
    assert list(debtor.billing_address.lines) == ["PO Box 9"]  # the postal address first
    assert debtor.billing_address.city == "Wellington"
    # What the reader keeps of a contact read in pages maps to the same debtor.
    kept = {k: v for k, v in contact.items() if k in facts.CONTACT_FIELDS}
    assert facts.debtor_contact(kept) == debtor
    assert set(contact) <= facts.CONTACT_FIELDS


def test_xero_times_parse_in_both_forms() -> None:
    assert facts.parse_time("/Date(1767225600000+0000)/") == datetime(2026, 1, 1, tzinfo=UTC)
    local = facts.parse_time("2026-11-28T07:10:00.000+13:00")
    assert local.date() == date(2026, 11, 28)  # the organisation's date kept


# -- webhooks ------------------------------------------------------------------------------

KEY = "webhook-key"


def test_the_signature_is_over_the_exact_bytes_with_either_key() -> None:
    body = b'{"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": "x"}'
    verify_signature(body, sign(body, KEY), [KEY])
    verify_signature(body, sign(body, "old-key"), ["new-key", "old-key"])  # a rotation
    for bad in (sign(body + b" ", KEY), sign(body, "other"), "", "not base64!"):
        with pytest.raises(Unauthenticated):
            verify_signature(body, bad, [KEY])


def test_a_delivery_parses_into_events_with_the_sync_entity_names() -> None:
    event = {
        "resourceUrl": "https://api.xero.com/api.xro/2.0/CreditNotes/n1",
        "resourceId": "n1",
        "eventDateUtc": "2026-03-02T01:15:39.902",
        "eventType": "UPDATE",
        "eventCategory": "CREDITNOTE",
        "tenantId": "t1",
        "tenantType": "ORGANISATION",
        "data": {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"},
    }
    subscription = {**event, "eventCategory": "SUBSCRIPTION", "tenantType": "APPLICATION"}
    body = json.dumps({"events": [event, subscription], "entropy": "e"}).encode()
    parsed = parse_payload(body)
    assert [(e.realm_id, e.entity, e.entity_id, e.operation, e.relevant) for e in parsed] == [
        ("t1", "CreditNote", "n1", "Update", True),
        ("t1", "Subscription", "n1", "Update", False),
    ]
    assert parsed[0].occurred_at == datetime(2026, 3, 2, 1, 15, 39, 902000, UTC)
    assert parse_payload(body)[0].event_id == parsed[0].event_id  # a retry is the same event
    assert parse_payload(b'{"events": []}') == []  # the Intent to Receive


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"events": {}}', b'{"events": [{"tenantId": "t1"}]}'],
)
def test_a_body_that_is_not_a_delivery_is_refused(body: bytes) -> None:
    with pytest.raises(InvalidArgument):
        parse_payload(body)


# -- errors and tokens -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "headers", "kind", "retry"),
    [
        (429, {"X-Rate-Limit-Problem": "minute", "Retry-After": "17"}, FailureKind.THROTTLED, 17),
        (429, {"X-Rate-Limit-Problem": "Concurrent"}, FailureKind.THROTTLED, 1),
        (429, {"X-Rate-Limit-Problem": "day", "Retry-After": "3600"}, FailureKind.THROTTLED, 3600),
        (401, {}, FailureKind.UNAUTHORIZED, 60),
        (403, {}, FailureKind.UNAUTHORIZED, 60),  # an organisation disconnected in Xero
        (503, {}, FailureKind.UNAVAILABLE, 60),
        (400, {}, FailureKind.REFUSED, 60),
        (404, {}, FailureKind.REFUSED, 60),
    ],
)
def test_what_each_xero_error_means_to_the_core(
    status: int, headers: dict[str, str], kind: FailureKind, retry: float
) -> None:
    error = classify(status, {"Title": "x"}, "", CIMultiDict(headers))
    failure = classify_failure(error)
    assert failure is not None
    assert (failure.kind, failure.retry_after_s) == (kind, retry)
    if isinstance(error, XeroThrottled):
        assert error.problem == headers["X-Rate-Limit-Problem"].lower()


def test_the_access_tokens_claims_name_the_user_and_the_consent() -> None:
    payload = (
        base64.urlsafe_b64encode(
            json.dumps({"xero_userid": "u1", "authentication_event_id": "e1"}).encode()
        )
        .decode()
        .rstrip("=")
    )
    assert token_claims(f"h.{payload}.s") == {"xero_userid": "u1", "authentication_event_id": "e1"}
    assert token_claims("opaque-token") == {}
    assert token_claims("a.!!!.c") == {}
