"""The CDC safety net with webhooks switched off: every change the bookkeeper makes in the
emulator reaches the placements after one poll; window splitting at the cap; the
re-query after a gap longer than CDC's 30 days; invoices that become overdue as time
passes; which realms are polled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import grpc
import pytest

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.deps import IntegrationDeps
from services.integration.sync import state
from services.integration.sync.runner import CDC, SyncRunner
from services.integration.tokens import ReauthorizationRequired
from tests.conftest import REALM_ID, Emulator
from tests.services.integration.sync.conftest import (
    TENANT,
    TODAY,
    Control,
    backfill,
    books,
    cdc_poll,
    eventually,
    overdue_in_books,
    placements,
    status,
    stub,
    sync_row,
)


def _pick(emulator: Emulator, count: int, *, distinct_customers: bool = True) -> list[Any]:
    """Overdue invoices without payments, each of another customer."""
    chosen: list[Any] = []
    customers: set[str] = set()
    for invoice in sorted(overdue_in_books(emulator).values(), key=lambda i: int(i.id)):
        if invoice.payment_ids or (distinct_customers and invoice.customer_id in customers):
            continue
        chosen.append(invoice)
        customers.add(invoice.customer_id)
        if len(chosen) == count:
            return chosen
    raise AssertionError("the company has too few overdue invoices for the test")


def _amount(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


async def test_every_change_reaches_the_placements_after_one_poll(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    await backfill(deps)
    before = await placements(deps)
    assert set(before) == set(overdue_in_books(emulator))
    paid, partly, voided, deleted, credited, edited, contact, postponed = _pick(emulator, 8)
    company = books(emulator)
    # A customer without placements yet gets a new, already overdue invoice.
    newcomer = await control(
        "POST",
        control.company("/customers"),
        {"display_name": "Nora Newcomer", "email": "nora@example.org", "phone": "(415) 555-0199"},
    )
    new_invoice = await control(
        "POST",
        control.company("/invoices"),
        {
            "customer_id": newcomer["Customer"]["Id"],
            "lines": [{"amount": "275.00", "description": "Rock Fountain", "qty": 1}],
            "txn_date": (TODAY - timedelta(days=60)).isoformat(),
            "due_date": (TODAY - timedelta(days=30)).isoformat(),
        },
    )
    new_id = new_invoice["Invoice"]["Id"]
    # A full payment, a partial one, a void, a delete, a credit memo, an edited amount.
    await control(
        "POST",
        control.company("/payments"),
        {
            "customer_id": paid.customer_id,
            "amount": _amount(paid.balance),
            "lines": [{"invoice_id": paid.id, "amount": _amount(paid.balance)}],
        },
    )
    await control(
        "POST",
        control.company("/payments"),
        {
            "customer_id": partly.customer_id,
            "amount": "10.00",
            "lines": [{"invoice_id": partly.id, "amount": "10.00"}],
        },
    )
    await control("POST", control.company(f"/invoices/{voided.id}/void"))
    await control("DELETE", control.company(f"/invoices/{deleted.id}"))
    memo = await control(
        "POST",
        control.company("/credit-memos"),
        {"customer_id": credited.customer_id, "amount": _amount(credited.balance)},
    )
    await control(
        "POST",
        control.company(f"/credit-memos/{memo['CreditMemo']['Id']}/apply"),
        {"invoice_id": credited.id, "amount": _amount(credited.balance)},
    )
    new_total = edited.total + 12_345
    await control(
        "PATCH",
        control.company(f"/invoices/{edited.id}"),
        {"lines": [{"amount": _amount(new_total), "description": "Revised", "qty": 1}]},
    )
    later = (TODAY + timedelta(days=30)).isoformat()
    await control("PATCH", control.company(f"/invoices/{postponed.id}"), {"due_date": later})
    await control(
        "PATCH",
        control.company(f"/customers/{contact.customer_id}"),
        {"email": "billing@new-domain.example", "phone": "(503) 555-0142"},
    )
    sent = await control("GET", "/deliveries")
    assert sent["deliveries"] == []  # webhooks are off: only the CDC poll can tell us

    result = await cdc_poll(deps)
    assert not result.requeried
    after = await placements(deps)

    assert after[new_id].status == mpb.PLACEMENT_STATUS_ACTIVE
    assert after[new_id].balance.minor_units == 27_500
    assert after[new_id].debtor.email == "nora@example.org"
    assert after[new_id].debtor.display_name == "Nora Newcomer"

    assert after[paid.id].status == mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND
    assert after[paid.id].resolution_reason == "paid out-of-band"
    assert after[partly.id].status == mpb.PLACEMENT_STATUS_ACTIVE
    assert (
        after[partly.id].balance.minor_units
        == partly.balance
        == before[partly.id].balance.minor_units - 1000
    )
    assert after[voided.id].status == mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW
    assert after[deleted.id].status == mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW
    assert after[credited.id].status == mpb.PLACEMENT_STATUS_CLOSED
    assert "credit memo" in after[credited.id].resolution_reason
    assert after[edited.id].status == mpb.PLACEMENT_STATUS_ACTIVE
    assert after[edited.id].balance.minor_units == company.invoices[edited.id].balance
    assert after[edited.id].balance.minor_units == before[edited.id].balance.minor_units + 12_345

    # Postponed in QBO: no longer overdue, but the placement stays and follows the invoice.
    assert after[postponed.id].status == mpb.PLACEMENT_STATUS_ACTIVE
    assert after[postponed.id].due_date == later

    customer = company.customers[contact.customer_id]
    for invoice_id, placement in after.items():
        if placement.customer_id == contact.customer_id and invoice_id in overdue_in_books(
            emulator
        ):
            assert placement.debtor.email == "billing@new-domain.example"
            numbers = {p.type: p.number for p in placement.debtor.phones}
            assert numbers[mpb.PHONE_TYPE_PRIMARY] == customer.phone == "(503) 555-0142"

    changed = {paid.id, partly.id, voided.id, deleted.id, credited.id, edited.id, postponed.id}
    untouched = set(before) - changed
    for invoice_id in untouched:
        if after[invoice_id].customer_id != contact.customer_id:
            assert after[invoice_id].version == before[invoice_id].version

    # The same poll again (a CDC replay of the overlap) changes nothing.
    await cdc_poll(deps)
    again = await placements(deps)
    assert {k: p.version for k, p in again.items()} == {k: p.version for k, p in after.items()}

    shown = await status(connected)
    assert shown.sync.HasField("last_cdc_poll_time")


async def test_the_high_water_mark_is_qbo_time_not_ours(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator
) -> None:
    await backfill(deps)
    mark = (await sync_row(deps)).cdc_high_water
    assert mark is not None
    assert mark.startswith(TODAY.isoformat())  # the company's clock
    await cdc_poll(deps)
    polled = await sync_row(deps)
    assert polled.cdc_high_water is not None
    assert polled.cdc_high_water.startswith(TODAY.isoformat())
    assert polled.cdc_high_water >= mark
    assert polled.cdc_polls == 1


async def test_a_gap_beyond_thirty_days_is_requeried_in_full(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    await backfill(deps)
    await cdc_poll(deps)
    paid, gone = _pick(emulator, 2)
    await control("POST", "/clock", {"advance_seconds": 31 * 86_400})
    await control(
        "POST",
        control.company("/payments"),
        {
            "customer_id": paid.customer_id,
            "amount": _amount(paid.balance),
            "lines": [{"invoice_id": paid.id, "amount": _amount(paid.balance)}],
        },
    )
    await control("DELETE", control.company(f"/invoices/{gone.id}"))

    result = await cdc_poll(deps)
    assert result.requeried
    got = await placements(deps)
    assert got[paid.id].status == mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND
    assert got[gone.id].status == mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW
    # Invoices that fell overdue during the 31 days were placed by the sweep.
    assert set(overdue_in_books(emulator)) <= set(got)
    # The next poll is an ordinary CDC poll again.
    assert not (await cdc_poll(deps)).requeried


async def test_invoices_that_become_overdue_as_days_pass_are_placed(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    await backfill(deps)
    assert set(await placements(deps)) == set(overdue_in_books(emulator))
    company = books(emulator)
    soon = [
        i for i in company.invoices.values() if i.balance > 0 and i.due_date >= TODAY.isoformat()
    ]
    assert soon
    await control("PATCH", control.company(), {"today": (TODAY + timedelta(days=20)).isoformat()})
    newly = set(overdue_in_books(emulator)) - set(await placements(deps))
    assert newly, "no invoice fell due in the 20 days"
    await cdc_poll(deps)
    assert set(await placements(deps)) == set(overdue_in_books(emulator))


async def test_sync_now_incremental_polls_at_once_and_only_connected_realms_are_polled(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    await backfill(deps)
    runner = SyncRunner(deps.sync)
    assert (CDC, TENANT, REALM_ID) not in await runner.due()  # next poll in an hour
    invoice = _pick(emulator, 1)[0]
    await control(
        "POST",
        control.company("/payments"),
        {
            "customer_id": invoice.customer_id,
            "amount": _amount(invoice.balance),
            "lines": [{"invoice_id": invoice.id, "amount": _amount(invoice.balance)}],
        },
    )
    reply = await stub(connected).SyncNow(
        pb.SyncNowRequest(tenant_id=TENANT, mode=pb.SYNC_MODE_INCREMENTAL, actor="support")
    )
    assert reply.started
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:

        async def resolved() -> bool:
            got = await placements(deps)
            return got[invoice.id].status == mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND

        await eventually(resolved)
    finally:
        stop.set()
        await task

    # Needs re-authorization, then disconnected: never polled, whatever is due.
    await state.update_state(deps.sessions, TENANT, REALM_ID, cdc_requested=True)
    await control("POST", control.company("/disconnect"), {})
    with pytest.raises(ReauthorizationRequired):
        await cdc_poll(deps)
    assert (await status(connected)).state == pb.CONNECTION_STATE_NEEDS_REAUTHORIZATION
    assert await runner.due() == []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(connected).SyncNow(pb.SyncNowRequest(tenant_id=TENANT, actor="support"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await stub(connected).Disconnect(
        pb.DisconnectRequest(tenant_id=TENANT, actor="jane", reason="done")
    )
    assert await runner.due() == []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub(connected).SyncNow(pb.SyncNowRequest(tenant_id=TENANT, actor="support"))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
