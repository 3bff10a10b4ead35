"""The Accounting API subset and the bookkeeper's actions behind it."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import pytest

from emulators.xero.api import where_paths
from emulators.xero.books import Organisation
from emulators.xero.where import parse_order
from tests.emulators.xero.conftest import Emulator, Tokens, make_config

TODAY = date(2026, 3, 2)


async def _books(emulator: Emulator, **spec: Any) -> tuple[str, Tokens]:
    tenant = await emulator.organisation(today=TODAY.isoformat(), **spec)
    return tenant, await emulator.connect([tenant])


async def _contact(emulator: Emulator, tenant: str, name: str = "Ada Lopez") -> str:
    created = await emulator.control(
        "POST", f"/organisations/{tenant}/contacts", {"name": name, "email": "ada@example.org"}
    )
    contact_id: str = created["Contacts"][0]["ContactID"]
    return contact_id


async def _invoice(
    emulator: Emulator, tenant: str, contact: str, amount: str = "100.00", **extra: Any
) -> dict[str, Any]:
    created = await emulator.control(
        "POST",
        f"/organisations/{tenant}/invoices",
        {"contact_id": contact, "amount": amount, **extra},
    )
    invoice: dict[str, Any] = created["Invoices"][0]
    return invoice


async def _read(emulator: Emulator, tokens: Tokens, tenant: str, invoice_id: str) -> Any:
    status, body, _ = await emulator.api(tokens, tenant, f"Invoices/{invoice_id}")
    assert status == 200
    return body["Invoices"][0]


def _ms(day: date) -> str:
    return (
        f"/Date({int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)}+0000)/"
    )


async def test_invoices_come_in_xero_json_with_ms_dates(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator)
    contact = await _contact(emulator, tenant)
    created = await _invoice(
        emulator, tenant, contact, "362.07", date="2026-01-15", due_date="2026-02-14"
    )
    status, body, headers = await emulator.api(tokens, tenant, f"Invoices/{created['InvoiceID']}")
    assert status == 200
    assert body["Status"] == "OK"
    assert re.fullmatch(r"/Date\(\d+\)/", body["DateTimeUTC"].replace("+0000", ""))
    invoice = body["Invoices"][0]
    assert invoice["Type"] == "ACCREC"
    assert invoice["Status"] == "AUTHORISED"
    assert invoice["Date"] == _ms(date(2026, 1, 15))
    assert invoice["DueDate"] == _ms(date(2026, 2, 14))
    assert invoice["DueDateString"] == "2026-02-14T00:00:00"
    assert re.fullmatch(r"/Date\(\d{13}\+0000\)/", invoice["UpdatedDateUTC"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", invoice["UpdatedDateUTCString"])
    assert invoice["Total"] == 362.07
    assert invoice["AmountDue"] == 362.07
    assert invoice["Contact"]["ContactID"] == contact
    assert invoice["LineItems"][0]["LineAmount"] == 362.07
    assert headers["X-MinLimit-Remaining"] == "59"  # this call was the first of the minute
    assert "X-DayLimit-Remaining" in headers


async def test_paging_up_to_a_thousand_and_summaries_without_a_page(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator, contacts=20, invoices=1205, seed=4)
    status, body, _ = await emulator.api(tokens, tenant, "Invoices", page="1", pageSize="5000")
    assert status == 200
    assert body["pagination"] == {"page": 1, "pageSize": 1000, "pageCount": 2, "itemCount": 1205}
    assert len(body["Invoices"]) == 1000
    assert "LineItems" in body["Invoices"][0]
    _, second, _ = await emulator.api(tokens, tenant, "Invoices", page="2", pageSize="1000")
    assert len(second["Invoices"]) == 205
    ids = {i["InvoiceID"] for i in body["Invoices"]} | {i["InvoiceID"] for i in second["Invoices"]}
    assert len(ids) == 1205
    _, default, _ = await emulator.api(tokens, tenant, "Invoices", page="3")
    assert default["pagination"]["pageSize"] == 100
    assert len(default["Invoices"]) == 100
    _, unpaged, _ = await emulator.api(tokens, tenant, "Invoices")
    assert "pagination" not in unpaged
    assert len(unpaged["Invoices"]) == 1205
    assert "LineItems" not in unpaged["Invoices"][0]


async def test_pages_by_updated_date_match_the_whole_ordered_list(emulator: Emulator) -> None:
    """Paged without ``where`` (rendered page by page) and in the order by UpdatedDateUTC,
    the pages are exactly the slices of the same listing ordered with a ``where``."""
    tenant, tokens = await _books(emulator, contacts=15, invoices=450, seed=9)
    for order in ("UpdatedDateUTC ASC", "UpdatedDateUTC DESC", None):
        extra = {"order": order} if order else {}
        _, whole, _ = await emulator.api(
            tokens, tenant, "Invoices", page="1", pageSize="1000", where="Total > 0", **extra
        )
        expected = [i["InvoiceID"] for i in whole["Invoices"]]
        assert len(expected) == 450
        got: list[str] = []
        for page in range(1, 6):
            _, body, _ = await emulator.api(
                tokens, tenant, "Invoices", page=str(page), pageSize="100", **extra
            )
            assert body["pagination"] == {
                "page": page,
                "pageSize": 100,
                "pageCount": 5,
                "itemCount": 450,
            }
            got += [i["InvoiceID"] for i in body["Invoices"]]
        assert got == expected, order
    stamps = [i["UpdatedDateUTC"] for i in whole["Invoices"]]
    assert len(set(stamps)) > 1


async def test_filters_ids_statuses_where_and_order(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator)
    ada = await _contact(emulator, tenant)
    bob = await _contact(emulator, tenant, "Bob Ito")
    old = await _invoice(emulator, tenant, ada, "10.00", date="2025-12-01", due_date="2026-01-01")
    new = await _invoice(emulator, tenant, bob, "20.00", date="2026-02-20", due_date="2026-03-20")
    draft = await _invoice(emulator, tenant, bob, "30.00", status="DRAFT")

    async def numbers(**params: str) -> list[str]:
        status, body, _ = await emulator.api(tokens, tenant, "Invoices", **params)
        assert status == 200, body
        return [i["InvoiceNumber"] for i in body["Invoices"]]

    assert await numbers(IDs=f"{old['InvoiceID']},{draft['InvoiceID']}") == [
        old["InvoiceNumber"],
        draft["InvoiceNumber"],
    ]
    assert await numbers(Statuses="DRAFT") == [draft["InvoiceNumber"]]
    overdue = (
        'Type=="ACCREC" AND Status=="AUTHORISED" AND AmountDue>0 AND DueDate<DateTime(2026,03,02)'
    )
    assert await numbers(where=overdue) == [old["InvoiceNumber"]]
    assert await numbers(where=f'Contact.ContactID==Guid("{bob}")', order="Total DESC") == [
        draft["InvoiceNumber"],
        new["InvoiceNumber"],
    ]
    assert await numbers(where='Status=="DRAFT" OR Total<15') == [
        old["InvoiceNumber"],
        draft["InvoiceNumber"],
    ]
    status, body, _ = await emulator.api(tokens, tenant, "Invoices", where="Total >> 3")
    assert status == 400
    assert body["Type"] == "QueryParseException"


async def test_if_modified_since_returns_what_changed(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator)
    contact = await _contact(emulator, tenant)
    first = await _invoice(emulator, tenant, contact)
    second = await _invoice(emulator, tenant, contact)
    await emulator.advance(5)
    # The organisation's clock (pinned to TODAY) is what UpdatedDateUTC is stamped with.
    org_now = emulator.state.organisations[tenant].now()
    mark = datetime.fromtimestamp(org_now, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    await emulator.advance(2)
    await emulator.control(
        "POST",
        f"/organisations/{tenant}/payments",
        {"invoice_id": second["InvoiceID"], "amount": "10.00"},
    )
    _, body, _ = await emulator.api(tokens, tenant, "Invoices", if_modified_since=mark)
    assert [i["InvoiceID"] for i in body["Invoices"]] == [second["InvoiceID"]]
    _, payments, _ = await emulator.api(tokens, tenant, "Payments", if_modified_since=mark)
    assert len(payments["Payments"]) == 1
    _, everything, _ = await emulator.api(tokens, tenant, "Invoices")
    assert {i["InvoiceID"] for i in everything["Invoices"]} == {
        first["InvoiceID"],
        second["InvoiceID"],
    }


@pytest.mark.parametrize(
    ("emulator_config", "expected"),
    [
        (make_config(if_modified_since_other="accept"), (200, 0)),
        (make_config(if_modified_since_other="ignore"), (200, 1)),
        (make_config(if_modified_since_other="reject"), (400, None)),
    ],
)
async def test_other_if_modified_since_shapes_follow_the_setting(
    emulator: Emulator, expected: tuple[int, int | None]
) -> None:
    """Only ``yyyy-mm-ddThh:mm:ss`` is Xero's documented shape; the rest is UNCONFIRMED."""
    tenant, tokens = await _books(emulator)
    await _invoice(emulator, tenant, await _contact(emulator, tenant))
    status, body, _ = await emulator.api(
        tokens, tenant, "Invoices", if_modified_since="Fri, 01 Jan 2100 00:00:00 GMT"
    )
    assert status == expected[0]
    if expected[1] is not None:
        assert len(body["Invoices"]) == expected[1]


async def test_part_payment_full_payment_and_payment_deletion(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator)
    invoice = await _invoice(emulator, tenant, await _contact(emulator, tenant), "100.00")
    invoice_id = invoice["InvoiceID"]
    part = await emulator.control(
        "POST", f"/organisations/{tenant}/payments", {"invoice_id": invoice_id, "amount": "40.00"}
    )
    read = await _read(emulator, tokens, tenant, invoice_id)
    assert (read["Status"], read["AmountPaid"], read["AmountDue"]) == ("AUTHORISED", 40.0, 60.0)
    assert "FullyPaidOnDate" not in read
    rest = await emulator.control(
        "POST", f"/organisations/{tenant}/payments", {"invoice_id": invoice_id}
    )
    read = await _read(emulator, tokens, tenant, invoice_id)
    assert (read["Status"], read["AmountDue"]) == ("PAID", 0.0)
    assert read["FullyPaidOnDate"] == _ms(TODAY)
    assert [p["PaymentID"] for p in read["Payments"]] == [
        part["Payments"][0]["PaymentID"],
        rest["Payments"][0]["PaymentID"],
    ]
    # Overpaying is refused, as in Xero.
    await emulator.control(
        "POST",
        f"/organisations/{tenant}/payments",
        {"invoice_id": invoice_id, "amount": "1.00"},
        expect=400,
    )
    deleted = await emulator.control(
        "DELETE", f"/organisations/{tenant}/payments/{rest['Payments'][0]['PaymentID']}"
    )
    assert deleted["Payments"][0]["Status"] == "DELETED"
    read = await _read(emulator, tokens, tenant, invoice_id)
    assert (read["Status"], read["AmountPaid"], read["AmountDue"]) == ("AUTHORISED", 40.0, 60.0)
    _, payments, _ = await emulator.api(tokens, tenant, "Payments")
    assert sorted(p["Status"] for p in payments["Payments"]) == ["AUTHORISED", "DELETED"]
    assert payments["Payments"][0]["PaymentType"] == "ACCRECPAYMENT"


@pytest.mark.parametrize("kind", ["credit-notes", "overpayments", "prepayments"])
async def test_credits_allocated_to_an_invoice(emulator: Emulator, kind: str) -> None:
    tenant, tokens = await _books(emulator)
    contact = await _contact(emulator, tenant)
    invoice = await _invoice(emulator, tenant, contact, "100.00")
    resource = {
        "credit-notes": "CreditNote",
        "overpayments": "Overpayment",
        "prepayments": "Prepayment",
    }[kind]
    credit = (
        await emulator.control(
            "POST", f"/organisations/{tenant}/{kind}", {"contact_id": contact, "amount": "30.00"}
        )
    )[f"{resource}s"][0]
    credit_id = credit[f"{resource}ID"]
    allocated = await emulator.control(
        "POST",
        f"/organisations/{tenant}/{kind}/{credit_id}/allocations",
        {"invoice_id": invoice["InvoiceID"], "amount": "25.00"},
    )
    read = await _read(emulator, tokens, tenant, invoice["InvoiceID"])
    assert (read["AmountCredited"], read["AmountDue"], read["Status"]) == (25.0, 75.0, "AUTHORISED")
    assert read[f"{resource}s"][0][f"{resource}ID"] == credit_id
    assert read[f"{resource}s"][0]["AppliedAmount"] == 25.0
    _, body, _ = await emulator.api(tokens, tenant, f"{resource}s/{credit_id}")
    listed = body[f"{resource}s"][0]
    assert (listed["RemainingCredit"], listed["Allocations"][0]["Amount"]) == (5.0, 25.0)
    allocation = allocated["Allocations"][0]["AllocationID"]
    await emulator.control(
        "DELETE", f"/organisations/{tenant}/{kind}/{credit_id}/allocations/{allocation}"
    )
    read = await _read(emulator, tokens, tenant, invoice["InvoiceID"])
    assert (read["AmountCredited"], read["AmountDue"]) == (0.0, 100.0)


async def test_a_credit_that_settles_the_invoice_makes_it_paid(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator)
    contact = await _contact(emulator, tenant)
    invoice = await _invoice(emulator, tenant, contact, "50.00")
    note = (
        await emulator.control(
            "POST", f"/organisations/{tenant}/credit-notes", {"contact_id": contact, "amount": "50"}
        )
    )["CreditNotes"][0]
    await emulator.control(
        "POST",
        f"/organisations/{tenant}/credit-notes/{note['CreditNoteID']}/allocations",
        {"invoice_id": invoice["InvoiceID"]},
    )
    read = await _read(emulator, tokens, tenant, invoice["InvoiceID"])
    assert (read["Status"], read["AmountDue"], read["AmountCredited"]) == ("PAID", 0.0, 50.0)
    _, notes, _ = await emulator.api(tokens, tenant, "CreditNotes")
    assert notes["CreditNotes"][0]["Status"] == "PAID"
    assert notes["CreditNotes"][0]["Type"] == "ACCRECCREDIT"


async def test_void_delete_and_their_rules(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator)
    contact = await _contact(emulator, tenant)
    approved = await _invoice(emulator, tenant, contact)
    draft = await _invoice(emulator, tenant, contact, status="DRAFT")
    base = f"/organisations/{tenant}/invoices"
    await emulator.control("DELETE", f"{base}/{approved['InvoiceID']}", expect=400)
    await emulator.control("POST", f"{base}/{draft['InvoiceID']}/void", expect=400)
    await emulator.control(
        "POST",
        f"/organisations/{tenant}/payments",
        {"invoice_id": approved["InvoiceID"], "amount": "1.00"},
    )
    refused = await emulator.control("POST", f"{base}/{approved['InvoiceID']}/void", expect=400)
    assert "payments" in refused["error"]
    await emulator.control("DELETE", f"{base}/{draft['InvoiceID']}")
    assert (await _read(emulator, tokens, tenant, draft["InvoiceID"]))["Status"] == "DELETED"
    other = await _invoice(emulator, tenant, contact)
    await emulator.control("POST", f"{base}/{other['InvoiceID']}/void")
    read = await _read(emulator, tokens, tenant, other["InvoiceID"])
    assert (read["Status"], read["AmountDue"]) == ("VOIDED", 0.0)


@pytest.mark.parametrize(
    ("emulator_config", "bumps"),
    [(make_config(), False), (make_config(due_date_bumps_part_paid=True), True)],
)
async def test_a_due_date_edit_on_a_part_paid_invoice_keeps_updated_date(
    emulator: Emulator, bumps: bool
) -> None:
    """Xero documents that such an edit does not bump UpdatedDateUTC; the setting gives the
    other reading."""
    tenant, tokens = await _books(emulator)
    contact = await _contact(emulator, tenant)
    unpaid = await _invoice(emulator, tenant, contact)
    part = await _invoice(emulator, tenant, contact)
    await emulator.control(
        "POST",
        f"/organisations/{tenant}/payments",
        {"invoice_id": part["InvoiceID"], "amount": "5.00"},
    )
    before = {
        i: (await _read(emulator, tokens, tenant, i))["UpdatedDateUTC"]
        for i in (unpaid["InvoiceID"], part["InvoiceID"])
    }
    await emulator.advance(3)
    for invoice_id in before:
        await emulator.control(
            "PATCH", f"/organisations/{tenant}/invoices/{invoice_id}", {"due_date": "2026-06-30"}
        )
    after = {i: await _read(emulator, tokens, tenant, i) for i in before}
    assert after[unpaid["InvoiceID"]]["UpdatedDateUTC"] != before[unpaid["InvoiceID"]]
    assert (after[part["InvoiceID"]]["UpdatedDateUTC"] != before[part["InvoiceID"]]) is bumps
    assert after[part["InvoiceID"]]["DueDateString"] == "2026-06-30T00:00:00"


async def test_contacts_organisation_and_archived_contacts(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator, timezone="AUSEASTERNSTANDARDTIME", base_currency="AUD")
    ada = await _contact(emulator, tenant)
    gone = await _contact(emulator, tenant, "Gone Pty")
    await _invoice(emulator, tenant, ada, "80.00", due_date="2026-02-01")
    await emulator.control(
        "PATCH", f"/organisations/{tenant}/contacts/{gone}", {"status": "ARCHIVED"}
    )
    _, body, _ = await emulator.api(tokens, tenant, "Contacts")
    assert [c["ContactID"] for c in body["Contacts"]] == [ada]
    receivable = body["Contacts"][0]["Balances"]["AccountsReceivable"]
    assert receivable == {"Outstanding": 80.0, "Overdue": 80.0}
    _, body, _ = await emulator.api(tokens, tenant, "Contacts", includeArchived="true")
    assert len(body["Contacts"]) == 2
    _, body, _ = await emulator.api(tokens, tenant, "Contacts", IDs=gone)
    assert body["Contacts"][0]["ContactStatus"] == "ARCHIVED"
    _, body, _ = await emulator.api(tokens, tenant, "Organisation")
    org = body["Organisations"][0]
    assert (org["Timezone"], org["BaseCurrency"]) == ("AUSEASTERNSTANDARDTIME", "AUD")


async def test_contacts_page_by_a_thousand_with_pagination_and_requests_are_counted(
    emulator: Emulator,
) -> None:
    """Contacts page as the other lists do: ``pageSize`` up to 1,000, ``pagination`` with
    the page count and item count (archived contacts counted with ``includeArchived``),
    pages in ``UpdatedDateUTC`` order; the emulator counts each request by path kind."""
    tenant, tokens = await _books(emulator, contacts=2345, seed=5)
    gone = next(iter(emulator.state.organisations[tenant].contacts))
    await emulator.control(
        "PATCH", f"/organisations/{tenant}/contacts/{gone}", {"status": "ARCHIVED"}
    )
    got: list[dict[str, Any]] = []
    for page in (1, 2, 3):
        status, body, _ = await emulator.api(
            tokens,
            tenant,
            "Contacts",
            page=str(page),
            pageSize="5000",
            order="UpdatedDateUTC ASC",
            includeArchived="true",
        )
        assert status == 200
        assert body["pagination"] == {
            "page": page,
            "pageSize": 1000,
            "pageCount": 3,
            "itemCount": 2345,
        }
        got += body["Contacts"]
    assert [len(got[:1000]), len(got[1000:2000]), len(got[2000:])] == [1000, 1000, 345]
    assert len({c["ContactID"] for c in got}) == 2345
    assert got[-1]["ContactID"] == gone  # edited last: at the end of the order
    assert all("Addresses" in c and "Phones" in c and "Balances" in c for c in got)
    _, active, _ = await emulator.api(tokens, tenant, "Contacts", page="1", pageSize="1000")
    assert active["pagination"]["itemCount"] == 2344
    await emulator.api(tokens, tenant, "Contacts", IDs=gone)
    await emulator.api(tokens, tenant, f"Contacts/{gone}")
    paths = emulator.state.stats()["api_requests_by_path"][tenant]
    assert paths == {"Contacts?page": 4, "Contacts?IDs": 1, "Contacts/{id}": 1}


async def test_the_api_is_read_only_and_unknown_ids_are_404(emulator: Emulator) -> None:
    tenant, tokens = await _books(emulator)
    status, _body, _ = await emulator.api(
        tokens, tenant, "Invoices/9b6a3c5e-0000-4000-8000-000000000000"
    )
    assert status == 404
    headers = {"Authorization": f"Bearer {tokens.access_token}", "xero-tenant-id": tenant}
    async with emulator.http.post(
        f"{emulator.base}/api.xro/2.0/Invoices", json={}, headers=headers
    ) as resp:
        assert resp.status == 400


async def test_a_page_chosen_on_the_cheap_fields_is_the_page_rendering_every_invoice_gives(
    emulator: Emulator,
) -> None:
    """A ``where`` and ``order`` naming only an invoice's own fields are decided without
    rendering every invoice (a 100,000-invoice organisation would render all of them per
    page); the page must be exactly the one the full rendering gives. The second listing of
    each pair adds a clause on a field only the full rendering has, true of every invoice."""
    tenant, tokens = await _books(emulator)
    ada, bob = await _contact(emulator, tenant), await _contact(emulator, tenant, "Bob Ng")
    made = []
    for n in range(12):
        made.append(
            await _invoice(
                emulator,
                tenant,
                (ada, bob)[n % 2],
                f"{100 + 7 * n}.00",
                date="2026-01-10",
                due_date=f"2026-02-{10 + n:02d}",
                reference=f"ref-{n % 3}",
            )
        )
    org = f"/organisations/{tenant}"
    await emulator.control("POST", f"{org}/payments", {"invoice_id": made[0]["InvoiceID"]})
    await emulator.control(
        "POST", f"{org}/payments", {"invoice_id": made[3]["InvoiceID"], "amount": "20.00"}
    )
    credit = await emulator.control(
        "POST", f"{org}/credit-notes", {"contact_id": bob, "amount": "30.00"}
    )
    await emulator.control(
        "POST",
        f"{org}/credit-notes/{credit['CreditNotes'][0]['CreditNoteID']}/allocations",
        {"invoice_id": made[5]["InvoiceID"]},
    )
    await emulator.control("POST", f"{org}/invoices/{made[7]['InvoiceID']}/void")
    cases = [
        (
            'Type=="ACCREC" AND Status=="AUTHORISED" AND AmountDue > 0 '
            "AND DueDate < DateTime(2026, 02, 19)",
            "DueDate ASC, InvoiceID ASC",
        ),
        ("AmountPaid > 0 OR AmountCredited > 0", "Total DESC"),
        (f'Contact.ContactID == Guid("{bob}") AND Reference != "ref-1"', "AmountDue DESC"),
        ('Status != "VOIDED" AND CurrencyCode == "USD" OR Total > 150', "UpdatedDateUTC DESC"),
    ]
    for where, order in cases:
        named = where_paths(where) | {path for path, _ in parse_order(order)}
        assert named <= Organisation.INVOICE_FIELDS  # the cheap path is taken
        assert ("lineamounttypes",) not in Organisation.INVOICE_FIELDS  # the full one here
        for page in ("1", "2"):
            pages = []
            for clause in (where, f'({where}) AND LineAmountTypes == "NoTax"'):
                status, body, _ = await emulator.api(
                    tokens, tenant, "Invoices", where=clause, order=order, page=page, pageSize="3"
                )
                assert status == 200, body
                pages.append((body["Invoices"], body["pagination"]))
            assert pages[0] == pages[1], (where, order, page)
            assert pages[0][1]["itemCount"] > 0, where
