"""The changes one inbox round brings reach the matcher as sets: the round's payments in one
ApplyAccountingChanges call, its invoices in another, whatever their number. A matcher
older than the integration (one without that call, during a rolling upgrade) still gets
every change, one call each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as matching_grpc
from aicollect.rpc.server import create_server
from services.integration.deps import IntegrationDeps
from services.integration.webhook_worker import entity_applier
from services.matcher.metrics import MatcherMetrics
from services.matcher.server import SERVICE_NAMES
from services.matcher.servicer import MatchingServicer
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator
from tests.services.integration.sync.conftest import (
    TENANT,
    Control,
    backfill,
    overdue_in_books,
    placements,
)


class OlderMatcher(MatchingServicer):
    """The matcher as built before ApplyAccountingChanges: the generated base answers
    UNIMPLEMENTED, exactly as an older build's server does for a method it lacks."""

    ApplyAccountingChanges = matching_grpc.MatchingServiceServicer.ApplyAccountingChanges  # type: ignore[assignment]


@pytest.fixture(params=["current", "older"])
def matcher_build(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def matcher_metrics() -> MatcherMetrics:
    return MatcherMetrics()


@pytest_asyncio.fixture
async def matcher_addr(
    sessions: async_sessionmaker[AsyncSession], matcher_build: str, matcher_metrics: MatcherMetrics
) -> AsyncIterator[str]:
    """This module's matcher: today's build, or one older than the integration."""
    servicer = (OlderMatcher if matcher_build == "older" else MatchingServicer)(
        sessions, metrics=matcher_metrics
    )

    def register(server: grpc.aio.Server) -> None:
        matching_grpc.add_MatchingServiceServicer_to_server(servicer, server)

    server = create_server(
        register, SERVICE_NAMES, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN
    )
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(None)


def _sample(metrics: MatcherMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels or None)
    return value or 0.0


async def test_a_rounds_payments_and_invoices_are_decided_in_two_calls(
    connected: grpc.aio.Channel,
    deps: IntegrationDeps,
    emulator: Emulator,
    control: Control,
    matcher_build: str,
    matcher_metrics: MatcherMetrics,
) -> None:
    await backfill(deps)
    paid: list[Any] = sorted(overdue_in_books(emulator).values(), key=lambda i: i.id)[:5]
    payment_ids = []
    for invoice in paid:
        amount = f"{invoice.balance // 100}.{invoice.balance % 100:02d}"
        made = await control(
            "POST",
            control.company("/payments"),
            {
                "customer_id": invoice.customer_id,
                "amount": amount,
                "lines": [{"invoice_id": invoice.id, "amount": amount}],
            },
        )
        payment_ids.append(made["Payment"]["Id"])
    before = _sample(matcher_metrics, "aicollect_matcher_changes_per_set_count")

    # One inbox round naming the five payments and the five invoices they paid.
    await entity_applier(deps.sync)(
        TENANT, REALM_ID, {"Payment": payment_ids, "Invoice": [i.id for i in paid]}, "qbo"
    )

    placed = await placements(deps)
    for invoice in paid:
        assert placed[invoice.id].status == mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND
    decided = _sample(
        matcher_metrics,
        "aicollect_matcher_decisions_total",
        call="payment",
        outcome="resolved_out_of_band",
    )
    assert decided == 5
    sets = _sample(matcher_metrics, "aicollect_matcher_changes_per_set_count") - before
    changes = _sample(matcher_metrics, "aicollect_matcher_changes_per_set_sum")
    if matcher_build == "current":
        assert sets == 2  # the payments together, then the invoices together
        assert changes >= 10
    else:
        assert sets == 0  # an older matcher: every change through its own call
