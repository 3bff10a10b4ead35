"""CDC window splitting: a response holding the cap is split per entity, then bisected,
and the part of the window CDC cannot prove complete is read through the query endpoint."""

from __future__ import annotations

import grpc
import pytest

from services.integration.deps import IntegrationDeps
from tests.conftest import Emulator
from tests.services.integration.sync.conftest import (
    Control,
    backfill,
    books,
    cdc_poll,
    overdue_in_books,
    placements,
)


@pytest.fixture
def sync_env() -> dict[str, str]:
    return {"AICOLLECT_CDC_MAX_OBJECTS": "10"}


async def test_a_response_at_the_cap_is_split_and_nothing_is_lost(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator, control: Control
) -> None:
    await backfill(deps)
    await control("PATCH", "/settings", {"cdc_max_objects": 10})
    targets = sorted(overdue_in_books(emulator).values(), key=lambda i: int(i.id))[:8]
    # 8 partial payments touch 8 payments and 8 invoices (16 objects), and 12 customers
    # are renamed: far more than one 10-object response holds.
    for invoice in targets:
        await control(
            "POST",
            control.company("/payments"),
            {
                "customer_id": invoice.customer_id,
                "amount": "1.00",
                "lines": [{"invoice_id": invoice.id, "amount": "1.00"}],
            },
        )
    renamed = {}
    for n, customer_id in enumerate(sorted(books(emulator).customers, key=int)):
        name = f"Renamed Customer {n:02d}"
        await control("PATCH", control.company(f"/customers/{customer_id}"), {"display_name": name})
        renamed[customer_id] = name
        # Spread the changes over the company's clock, as in real books.
        await control("POST", "/clock", {"advance_seconds": 3})

    result = await cdc_poll(deps)
    assert result.cdc_calls > 2  # split per entity, then bisected
    got = await placements(deps)
    for invoice in targets:
        assert got[invoice.id].balance.minor_units == books(emulator).invoices[invoice.id].balance
        assert got[invoice.id].balance.minor_units == invoice.balance
    for placement in got.values():
        assert placement.debtor.display_name == renamed[placement.customer_id]
