"""PreviewPlacements: what would flow in under the stored or given rules, paginated, with
totals per currency -- and nothing created or changed."""

from __future__ import annotations

from collections import Counter
from datetime import date

import grpc
import pytest
from sqlalchemy import func, select

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.rpc.errors import error_info
from emulators.qbo.config import CompanySpec
from services.integration.deps import IntegrationDeps
from services.integration.models import AuditEvent, PlacedInvoice, SyncState
from tests.conftest import REALM_ID, Emulator
from tests.services.integration.sync.conftest import (
    TENANT,
    TODAY,
    books,
    overdue_in_books,
    placements,
    stub,
)


@pytest.fixture
def company() -> CompanySpec:
    return CompanySpec(
        realm_id=REALM_ID,
        name="Maple & Co",
        customers=15,
        invoices=80,
        multicurrency=True,
        currencies=("USD", "CAD"),
        today=TODAY,
        seed=5,
    )


async def _all_pages(
    api: object, request: pb.PreviewPlacementsRequest
) -> tuple[list[pb.PlacementCandidate], list[pb.PreviewPlacementsResponse]]:
    candidates: list[pb.PlacementCandidate] = []
    replies: list[pb.PreviewPlacementsResponse] = []
    token = ""
    while True:
        request.page_token = token
        reply = await api.PreviewPlacements(request)  # type: ignore[attr-defined]
        replies.append(reply)
        candidates.extend(reply.candidates)
        token = reply.next_page_token
        if not token:
            return candidates, replies


async def _snapshot(deps: IntegrationDeps) -> tuple[object, ...]:
    async with deps.sessions() as session:
        audits = (await session.execute(select(func.count()).select_from(AuditEvent))).scalar()
        placed = (await session.execute(select(func.count()).select_from(PlacedInvoice))).scalar()
        rows = (await session.execute(select(SyncState))).scalars().all()
        states = [(r.backfill_phase, r.cdc_high_water, r.updated_at) for r in rows]
    return audits, placed, states


async def test_preview_pages_through_every_overdue_invoice_and_creates_nothing(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator
) -> None:
    before = await _snapshot(deps)
    api = stub(connected)
    candidates, replies = await _all_pages(
        api, pb.PreviewPlacementsRequest(tenant_id=TENANT, page_size=5)
    )
    overdue = overdue_in_books(emulator)
    assert len(replies) == -(-len(overdue) // 5)
    assert [c.qbo_invoice_id for c in candidates] == [
        i.id for i in sorted(overdue.values(), key=lambda i: (i.due_date, int(i.id)))
    ]
    company = books(emulator)
    for c in candidates:
        invoice = overdue[c.qbo_invoice_id]
        assert c.would_place
        assert c.exclusion_reason == pb.PLACEMENT_EXCLUSION_REASON_UNSPECIFIED
        assert c.balance.minor_units == invoice.balance
        assert c.balance.currency_code == invoice.currency
        assert c.total_amount.minor_units == invoice.total
        assert c.due_date == invoice.due_date
        assert c.days_past_due == (company.today() - date.fromisoformat(invoice.due_date)).days
        assert c.customer_display_name == company.customers[invoice.customer_id].display_name
        assert c.doc_number == invoice.doc_number
    per_currency = Counter(i.currency for i in overdue.values())
    assert len(per_currency) == 2
    for reply in replies:  # totals over all pages, on every page
        assert reply.company_date == TODAY.isoformat()
        assert {t.currency_code: t.candidate_count for t in reply.totals} == per_currency
        assert {t.currency_code: t.placed_count for t in reply.totals} == per_currency
        assert {t.currency_code: t.placed_balance_minor_units for t in reply.totals} == {
            code: sum(i.balance for i in overdue.values() if i.currency == code)
            for code in per_currency
        }
        assert reply.rules == pb.PlacementRules()
    # Nothing was created or changed: no placement, no audit, no sync state change.
    assert await placements(deps) == {}
    assert await _snapshot(deps) == before


async def test_preview_under_given_rules(
    connected: grpc.aio.Channel, deps: IntegrationDeps, emulator: Emulator
) -> None:
    api = stub(connected)
    rules = pb.PlacementRules(currency_codes=["CAD"], min_days_past_due=20)
    candidates, replies = await _all_pages(
        api, pb.PreviewPlacementsRequest(tenant_id=TENANT, rules_override=rules, page_size=1000)
    )
    assert len(replies) == 1
    overdue = overdue_in_books(emulator)
    assert {c.qbo_invoice_id for c in candidates} == set(overdue)
    for c in candidates:
        if c.balance.currency_code != "CAD":
            assert not c.would_place
            assert c.exclusion_reason == pb.PLACEMENT_EXCLUSION_REASON_CURRENCY_NOT_ALLOWED
        elif c.days_past_due < 20:
            assert c.exclusion_reason == pb.PLACEMENT_EXCLUSION_REASON_TOO_FEW_DAYS_PAST_DUE
        else:
            assert c.would_place
    totals = {t.currency_code: t for t in replies[0].totals}
    assert totals["USD"].placed_count == 0
    assert totals["CAD"].placed_count == sum(1 for c in candidates if c.would_place)
    assert replies[0].rules == rules
    # The stored rules are untouched (the defaults, version 0).
    stored = await api.GetPlacementRules(pb.GetPlacementRulesRequest(tenant_id=TENANT))
    assert stored.version == 0


async def test_preview_refuses_bad_input(connected: grpc.aio.Channel) -> None:
    api = stub(connected)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.PreviewPlacements(
            pb.PreviewPlacementsRequest(
                tenant_id=TENANT, rules_override=pb.PlacementRules(currency_codes=["dollars"])
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_info(info.value)
    assert detail is not None
    assert detail.metadata["field"] == "rules_override.currency_codes[0]"

    first = await api.PreviewPlacements(pb.PreviewPlacementsRequest(tenant_id=TENANT, page_size=2))
    assert first.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as info:  # a token made for other rules
        await api.PreviewPlacements(
            pb.PreviewPlacementsRequest(
                tenant_id=TENANT,
                page_size=2,
                page_token=first.next_page_token,
                rules_override=pb.PlacementRules(min_days_past_due=3),
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await api.PreviewPlacements(
            pb.PreviewPlacementsRequest(tenant_id="someone-else", page_size=2)
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    detail = error_info(info.value)
    assert detail is not None
    assert detail.reason == "CONNECTION_NOT_FOUND"
