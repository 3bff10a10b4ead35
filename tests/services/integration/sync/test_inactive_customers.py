"""Customers made inactive in QBO ("deleted" in its UI).

Intuit's queries answer active customers only unless ``Active`` is named, so the sync reads
customers with ``Active IN (true, false)``: an inactive customer's invoices are placed and
kept with the customer's own contact details (never the thinner copy on the invoice), and
its placements follow their invoices and payments like any other. Making a customer
inactive changes no placement by itself.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import grpc

from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.deps import IntegrationDeps
from services.integration.webhook_worker import entity_applier
from tests.conftest import REALM_ID, Emulator
from tests.services.integration.sync.conftest import (
    TENANT,
    TODAY,
    Control,
    backfill,
    books,
    cdc_poll,
    overdue_in_books,
    placements,
)


def _unpaid_overdue(emulator: Emulator, count: int) -> list[Any]:
    """Overdue invoices without payments, each of another customer that has a phone."""
    company = books(emulator)
    chosen: list[Any] = []
    for invoice in sorted(overdue_in_books(emulator).values(), key=lambda i: int(i.id)):
        customer = company.customers[invoice.customer_id]
        if invoice.payment_ids or not customer.phone:
            continue
        if any(c.customer_id == invoice.customer_id for c in chosen):
            continue
        chosen.append(invoice)
        if len(chosen) == count:
            return chosen
    raise AssertionError("the company has too few overdue invoices for the test")


def _contact_of(emulator: Emulator, customer_id: str) -> tuple[str, str, str]:
    customer = books(emulator).customers[customer_id]
    return customer.display_name, customer.email, customer.phone


def _contact(placement: mpb.Placement) -> tuple[str, str, str]:
    debtor = placement.debtor
    phone = next((p.number for p in debtor.phones if p.type == mpb.PHONE_TYPE_PRIMARY), "")
    return debtor.display_name, debtor.email, phone


async def test_backfill_places_an_inactive_customers_invoice_with_its_contact(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    (invoice,) = _unpaid_overdue(emulator, 1)
    expected = _contact_of(emulator, invoice.customer_id)
    # QBO's API refuses this with an open balance; the sync must not depend on that.
    await control("PATCH", control.company(f"/customers/{invoice.customer_id}"), {"active": False})

    await backfill(deps)

    placed = await placements(deps)
    assert set(placed) == set(overdue_in_books(emulator))
    assert placed[invoice.id].status == mpb.PLACEMENT_STATUS_ACTIVE
    assert _contact(placed[invoice.id]) == expected


async def test_placements_of_an_inactive_customer_keep_its_contact_and_follow_qbo(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    (still_owed,) = _unpaid_overdue(emulator, 1)
    # A customer whose one invoice is overdue, so that it can be deleted once paid.
    departing = await control(
        "POST",
        control.company("/customers"),
        {"display_name": "Dana Departing", "email": "dana@example.org", "phone": "(415) 555-0123"},
    )
    departing_id = departing["Customer"]["Id"]
    created = await control(
        "POST",
        control.company("/invoices"),
        {
            "customer_id": departing_id,
            "lines": [{"amount": "275.00", "description": "Rock Fountain", "qty": 1}],
            "txn_date": (TODAY - timedelta(days=60)).isoformat(),
            "due_date": (TODAY - timedelta(days=30)).isoformat(),
        },
    )
    paid_then_deleted = books(emulator).invoices[created["Invoice"]["Id"]]
    await backfill(deps)
    kept = _contact_of(emulator, still_owed.customer_id)
    before = await placements(deps)
    assert _contact(before[still_owed.id]) == kept

    # One customer is made inactive while it still owes; an hour later a poll sees only that.
    await control(
        "PATCH", control.company(f"/customers/{still_owed.customer_id}"), {"active": False}
    )
    await control("POST", "/clock", {"advance_seconds": 3_000})
    await cdc_poll(deps)
    assert await placements(deps) == before

    # Its invoice is edited later (the customer is not in this poll's changes): the
    # placement's amounts follow QBO and the contact stays the customer's.
    new_total = still_owed.total + 5_000
    await control(
        "PATCH",
        control.company(f"/invoices/{still_owed.id}"),
        {"lines": [{"amount": f"{new_total / 100:.2f}", "description": "Revised", "qty": 1}]},
    )
    # The other customer pays in full and is then deleted (inactive, " (deleted)" appended).
    amount = f"{paid_then_deleted.balance / 100:.2f}"
    await control(
        "POST",
        control.company("/payments"),
        {
            "customer_id": paid_then_deleted.customer_id,
            "amount": amount,
            "lines": [{"invoice_id": paid_then_deleted.id, "amount": amount}],
        },
    )
    await control("DELETE", control.company(f"/customers/{departing_id}"))
    assert books(emulator).customers[departing_id].display_name == "Dana Departing (deleted)"

    await cdc_poll(deps)

    after = await placements(deps)
    owed = after[still_owed.id]
    assert owed.status == mpb.PLACEMENT_STATUS_ACTIVE
    assert owed.balance.minor_units == new_total
    assert _contact(owed) == kept
    resolved = after[paid_then_deleted.id]
    assert resolved.status == mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND
    assert _contact(resolved) == ("Dana Departing", "dana@example.org", "(415) 555-0123")
    assert set(after) == set(before)


async def test_an_inactive_customers_invoice_that_falls_due_is_placed_with_its_contact(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    await backfill(deps)
    company = books(emulator)
    later = TODAY + timedelta(days=20)
    soon = next(
        i
        for i in sorted(company.invoices.values(), key=lambda i: int(i.id))
        if i.balance > 0
        and TODAY.isoformat() <= i.due_date < later.isoformat()
        and company.customers[i.customer_id].phone
    )
    expected = _contact_of(emulator, soon.customer_id)
    await control("PATCH", control.company(f"/customers/{soon.customer_id}"), {"active": False})
    # An hour later a poll sees the customer change; the invoice is not due yet.
    await control("POST", "/clock", {"advance_seconds": 3_000})
    await cdc_poll(deps)
    assert soon.id not in await placements(deps)

    # Days pass (the customer change is now behind the poll's overlap): the poll's sweep
    # places the invoice, and its customer is read from QBO.
    await control("PATCH", control.company(), {"today": later.isoformat()})
    await cdc_poll(deps)

    placed = (await placements(deps))[soon.id]
    assert placed.status == mpb.PLACEMENT_STATUS_ACTIVE
    assert _contact(placed) == expected


async def test_a_webhook_for_a_customer_made_inactive_is_no_deletion(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    """The webhook processor reads the customer with a query: an inactive one is found, and
    the contact change made with it reaches its placements."""
    await backfill(deps)
    (invoice,) = _unpaid_overdue(emulator, 1)
    await control(
        "PATCH",
        control.company(f"/customers/{invoice.customer_id}"),
        {"active": False, "email": "accounts@moved.example.org"},
    )

    await entity_applier(deps.sync)(TENANT, REALM_ID, {"Customer": [invoice.customer_id]}, "qbo")

    placed = (await placements(deps))[invoice.id]
    assert placed.status == mpb.PLACEMENT_STATUS_ACTIVE
    assert placed.debtor.email == "accounts@moved.example.org"
