"""Money a customer paid before the connection, applied to no invoice: the first backfill
reads it (QBO payments with ``UnappliedAmt``), so the invoice it covers is placed paused for
review when the creditor confirms, and the others active (docs/matching.md, "Unapplied
payments"). No CDC poll runs here: only the backfill can have read those payments."""

from __future__ import annotations

import grpc
import pytest
from sqlalchemy import select

from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.provider import Provider
from emulators.qbo.config import CompanySpec
from services.integration.deps import IntegrationDeps
from services.integration.sync import confirm, confirmations
from services.matcher.models import OutreachEventRow, PaymentSeen
from tests.conftest import REALM_ID, Emulator
from tests.helpers.connections import connect, enable
from tests.services.integration.sync.conftest import (
    TENANT,
    TODAY,
    Control,
    backfill,
    eventually,
    overdue_in_books,
    placements,
)


@pytest.fixture
def company() -> CompanySpec:
    return CompanySpec(
        realm_id=REALM_ID, name="Prepaid Parts Co", customers=6, invoices=40, today=TODAY, seed=8
    )


def amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


async def test_unapplied_money_paid_before_connecting_places_its_invoice_paused(
    channel: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    overdue = overdue_in_books(emulator)
    by_customer: dict[str, list[int]] = {}
    for invoice in overdue.values():
        by_customer.setdefault(invoice.customer_id, []).append(invoice.balance)
    covered, short, voided = sorted(by_customer, key=lambda c: (-len(by_customer[c]), c))[:3]
    # Before the connection: the customer ``covered`` paid as much as its smallest overdue
    # invoice, applied to nothing; ``short`` paid less than its smallest; ``voided``'s
    # payment was voided; every other payment is applied in full (no unapplied money).
    smallest = min(by_customer[covered])
    made = {}
    for customer, total in (
        (covered, smallest),
        (short, min(by_customer[short]) - 100),
        (voided, max(by_customer[voided])),
    ):
        payment = await control(
            "POST", control.company("/payments"), {"customer_id": customer, "amount": amount(total)}
        )
        made[customer] = payment["Payment"]["Id"]
    await control("POST", control.company(f"/payments/{made[voided]}/void"))
    settled = next(i for i in overdue.values() if i.customer_id not in (covered, short, voided))
    await control(
        "POST",
        control.company("/payments"),
        {
            "customer_id": settled.customer_id,
            "amount": amount(settled.balance),
            "lines": [{"invoice_id": settled.id, "amount": amount(settled.balance)}],
        },
    )
    overdue = overdue_in_books(emulator)  # the settled invoice is no longer overdue
    expected_paused = {
        i.id for i in overdue.values() if i.customer_id == covered and i.balance <= smallest
    }
    assert expected_paused

    await enable(channel, TENANT)
    assert (await connect(channel, TENANT, REALM_ID)).connected
    await backfill(deps)
    # The backfill handed the matcher exactly the payments carrying unapplied money.
    async with deps.sessions() as session:
        seen = dict(
            (
                await session.execute(
                    select(PaymentSeen.payment_id, PaymentSeen.unapplied_minor_units).where(
                        PaymentSeen.tenant_id == TENANT
                    )
                )
            )
            .tuples()
            .all()
        )
    assert seen == {made[covered]: smallest, made[short]: min(by_customer[short]) - 100}
    assert await placements(deps) == {}  # the preview: nothing placed before confirming

    result = await confirm.confirm(deps.sync, TENANT, Provider.QBO, actor="jane@acme.test")
    if result.confirmation.state == confirmations.RUNNING:

        async def done() -> bool:
            async with deps.sessions() as session:
                latest = await confirmations.latest(session, TENANT, REALM_ID)
            return latest is not None and latest.state != confirmations.RUNNING

        await eventually(done, within=60)

    placed = await placements(deps)
    assert set(placed) == set(overdue)
    paused = {
        k for k, p in placed.items() if p.status == mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW
    }
    assert paused == expected_paused
    for invoice_id in expected_paused:
        assert f"QBO payment {made[covered]}" in placed[invoice_id].review_reason
    assert all(
        p.status == mpb.PLACEMENT_STATUS_ACTIVE for k, p in placed.items() if k not in paused
    )
    # Outreach was told to pause the covered ones, and nothing else.
    async with deps.sessions() as session:
        events = (
            await session.execute(select(OutreachEventRow.placement_id, OutreachEventRow.type))
        ).all()
    assert sorted(events) == sorted((placed[i].placement_id, "pause") for i in expected_paused)
