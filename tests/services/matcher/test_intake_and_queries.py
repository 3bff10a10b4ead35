"""UpsertPlacements, GetPlacement, ListPlacements and ListAuditEvents."""

from __future__ import annotations

import grpc
import pytest

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import (
    REALM,
    TENANT,
    Matcher,
    invalid_field,
    placement_input,
    qbo_payment,
    status_name,
)


async def _upsert(matcher: Matcher, *inputs: pb.PlacementInput) -> list[pb.UpsertResult]:
    reply = await matcher.stub.UpsertPlacements(
        pb.UpsertPlacementsRequest(
            tenant_id=TENANT, provider=pb.PROVIDER_QBO, company_id=REALM, placements=list(inputs)
        )
    )
    return list(reply.results)


async def test_upsert_creates_one_placement_per_invoice_whatever_the_repeats(
    matcher: Matcher,
) -> None:
    first = await _upsert(matcher, placement_input("70", 10_000), placement_input("71", 5_000))
    assert [r.outcome for r in first] == [pb.UPSERT_OUTCOME_CREATED] * 2
    again = await _upsert(matcher, placement_input("71", 5_000), placement_input("70", 10_000))
    assert [r.outcome for r in again] == [pb.UPSERT_OUTCOME_UNCHANGED] * 2
    assert [r.placement_id for r in again] == [first[1].placement_id, first[0].placement_id]

    placement = await matcher.get(first[0].placement_id)
    assert status_name(placement) == "ACTIVE"
    assert placement.intake_channel == pb.INTAKE_CHANNEL_ACCOUNTING_SYNC
    assert (placement.tenant_id, placement.company_id, placement.invoice_id) == (
        TENANT,
        REALM,
        "70",
    )
    assert placement.balance == placement.original_amount
    assert placement.balance.minor_units == 10_000
    assert placement.debtor.email == "ap@redrock.example"
    assert placement.debtor.phones[0].number == "(415) 444-6538"
    assert placement.due_date == "2026-10-01"
    assert placement.version == 1
    listed = await matcher.stub.ListPlacements(pb.ListPlacementsRequest(tenant_id=TENANT))
    assert len(listed.placements) == 2


async def test_contact_updates_apply_to_active_placements_only(matcher: Matcher) -> None:
    active, resolved = await _upsert(
        matcher, placement_input("70", 10_000), placement_input("71", 5_000)
    )
    await matcher.pay(qbo_payment("1", [("71", 5_000)]))

    updated = await _upsert(
        matcher,
        placement_input("70", 10_000, email="new@redrock.example", version="1"),
        placement_input("71", 5_000, email="new@redrock.example", version="1"),
    )
    assert [r.outcome for r in updated] == [pb.UPSERT_OUTCOME_UPDATED, pb.UPSERT_OUTCOME_UNCHANGED]
    refreshed = await matcher.get(active.placement_id)
    assert refreshed.debtor.email == "new@redrock.example"
    assert refreshed.version == 2
    untouched = await matcher.get(resolved.placement_id)
    assert untouched.debtor.email == "ap@redrock.example"
    assert status_name(untouched) == "RESOLVED_OUT_OF_BAND"  # never resurrected


async def test_upsert_never_changes_status_or_balance(matcher: Matcher) -> None:
    (result,) = await _upsert(matcher, placement_input("70", 10_000))
    await matcher.pay(qbo_payment("1", [("70", 4_000)]))
    await _upsert(matcher, placement_input("70", 10_000, version="2"))
    assert (await matcher.get(result.placement_id)).balance.minor_units == 6_000


async def test_an_older_invoice_version_does_not_overwrite_newer_fields(matcher: Matcher) -> None:
    (result,) = await _upsert(matcher, placement_input("70", 10_000, doc_number="A-2", version="5"))
    (older,) = await _upsert(matcher, placement_input("70", 10_000, doc_number="A-1", version="4"))
    assert older.outcome == pb.UPSERT_OUTCOME_UNCHANGED
    assert (await matcher.get(result.placement_id)).doc_number == "A-2"


INVALID_ITEMS: list[tuple[pb.PlacementInput, str]] = [
    (pb.PlacementInput(), "placements[1].invoice_id"),
    (placement_input("9", 100, customer=""), "placements[1].customer_id"),
    (placement_input("9", -5), "placements[1].total_amount.minor_units"),
    (placement_input("9", 0, total=100), "placements[1].balance.minor_units"),
    (placement_input("9", 100, currency="usd"), "placements[1].total_amount.currency_code"),
    (placement_input("70", 100), "placements[1].invoice_id"),
]


async def test_an_invalid_item_fails_the_whole_batch(matcher: Matcher) -> None:
    for item, field in INVALID_ITEMS:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await _upsert(matcher, placement_input("70", 10_000), item)
        assert invalid_field(info) == field
    listed = await matcher.stub.ListPlacements(pb.ListPlacementsRequest(tenant_id=TENANT))
    assert list(listed.placements) == []


async def test_upsert_requires_tenant_provider_company_and_1_to_1000_items(
    matcher: Matcher,
) -> None:
    requests = {
        "tenant_id": pb.UpsertPlacementsRequest(
            provider=pb.PROVIDER_QBO, company_id=REALM, placements=[placement_input()]
        ),
        "provider": pb.UpsertPlacementsRequest(
            tenant_id=TENANT, company_id=REALM, placements=[placement_input()]
        ),
        "company_id": pb.UpsertPlacementsRequest(
            tenant_id=TENANT, provider=pb.PROVIDER_QBO, placements=[placement_input()]
        ),
        "placements": pb.UpsertPlacementsRequest(
            tenant_id=TENANT, provider=pb.PROVIDER_QBO, company_id=REALM
        ),
    }
    for field, request in requests.items():
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.stub.UpsertPlacements(request)
        assert invalid_field(info) == field
    too_many = [placement_input(str(i), 100) for i in range(1001)]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _upsert(matcher, *too_many)
    assert invalid_field(info) == "placements"


async def test_a_full_batch_of_1000(matcher: Matcher) -> None:
    results = await _upsert(matcher, *(placement_input(str(i), 100 + i) for i in range(1000)))
    assert len({r.placement_id for r in results}) == 1000
    again = await _upsert(matcher, *(placement_input(str(i), 100 + i) for i in range(1000)))
    assert {r.outcome for r in again} == {pb.UPSERT_OUTCOME_UNCHANGED}


async def test_get_unknown_placement(matcher: Matcher) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.get("no-such-placement")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.get("")
    assert invalid_field(info) == "placement_id"


async def test_list_placements_pages_oldest_first_with_filters(matcher: Matcher) -> None:
    created = [
        (await _upsert(matcher, placement_input(str(i), 1_000)))[0].placement_id for i in range(7)
    ]
    await matcher.place(placement_input("0", 1_000), tenant="globex")
    await matcher.pay(qbo_payment("p", [("1", 1_000), ("4", 1_000)]))

    seen: list[str] = []
    token = ""
    while True:
        page = await matcher.stub.ListPlacements(
            pb.ListPlacementsRequest(tenant_id=TENANT, page_size=3, page_token=token)
        )
        assert len(page.placements) <= 3
        seen += [p.placement_id for p in page.placements]
        token = page.next_page_token
        if not token:
            break
    assert seen == created

    resolved = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(
            tenant_id=TENANT, statuses=[pb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND], page_size=1
        )
    )
    assert [p.placement_id for p in resolved.placements] == [created[1]]
    rest = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(
            tenant_id=TENANT,
            statuses=[pb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND],
            page_size=1,
            page_token=resolved.next_page_token,
        )
    )
    assert [p.placement_id for p in rest.placements] == [created[4]]
    assert rest.next_page_token == ""

    by_invoice = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(tenant_id=TENANT, company_id=REALM, invoice_id="5")
    )
    assert [p.placement_id for p in by_invoice.placements] == [created[5]]
    nothing = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(tenant_id=TENANT, statuses=[pb.PLACEMENT_STATUS_UNSPECIFIED])
    )
    assert list(nothing.placements) == []

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.stub.ListPlacements(
            pb.ListPlacementsRequest(tenant_id=TENANT, page_token=resolved.next_page_token)
        )
    assert invalid_field(info) == "page_token"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await matcher.stub.ListPlacements(pb.ListPlacementsRequest())
    assert invalid_field(info) == "tenant_id"


async def test_list_placements_by_resolution_reason(matcher: Matcher) -> None:
    """The dashboard's "closed, paid out-of-band" list: only that reason, paged, and a
    reason filter that is empty or too long is refused."""
    oob, portal, active, other_oob = await matcher.place(
        placement_input("20", 1_000),
        placement_input("21", 1_000),
        placement_input("22", 1_000),
        placement_input("23", 1_000),
    )
    await matcher.pay(qbo_payment("p20", [("20", 1_000)]))
    await matcher.portal(portal.placement_id, "pp-21", 1_000)
    await matcher.pay(qbo_payment("p23", [("23", 1_000)]))

    first = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(
            tenant_id=TENANT, resolution_reasons=["paid out-of-band"], page_size=1
        )
    )
    assert len(first.placements) == 1
    assert first.placements[0].resolution_reason == "paid out-of-band"
    second = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(
            tenant_id=TENANT,
            resolution_reasons=["paid out-of-band"],
            page_size=1,
            page_token=first.next_page_token,
        )
    )
    assert second.next_page_token == ""
    # One batch shares a creation time, so the two pages are in placement-id order.
    paged = {p.placement_id for p in [*first.placements, *second.placements]}
    assert paged == {oob.placement_id, other_oob.placement_id}
    both = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(
            tenant_id=TENANT,
            statuses=[pb.PLACEMENT_STATUS_RESOLVED_PAID_PORTAL],
            resolution_reasons=["paid out-of-band", "paid through the portal"],
        )
    )
    assert [p.placement_id for p in both.placements] == [portal.placement_id]
    assert active.placement_id not in {p.placement_id for p in both.placements}
    for bad in ("", " ", "x" * 201):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.stub.ListPlacements(
                pb.ListPlacementsRequest(tenant_id=TENANT, resolution_reasons=[bad])
            )
        assert invalid_field(info) == "resolution_reasons"


async def test_audit_trail_of_a_placement_and_a_tenant(matcher: Matcher) -> None:
    first, second = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    await matcher.pay(qbo_payment("1", [("70", 2_000)]))
    await matcher.pay(qbo_payment("2", [("70", 8_000)]))
    await matcher.pay(qbo_payment("3", [("71", 10_000)]))

    trail = await matcher.audit(first.placement_id)
    assert [e.action for e in trail] == [
        "placement.created",
        "placement.partial_payment",
        "placement.resolved_out_of_band",
    ]
    assert trail[2].details["payment_id"] == "2"
    assert trail[2].details["balance_minor_units"] == "0"
    assert trail[2].details["previous_balance_minor_units"] == "8000"
    assert all(e.placement_id == first.placement_id and e.tenant_id == TENANT for e in trail)

    actions: list[str] = []
    token = ""
    while True:
        page = await matcher.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant_id=TENANT, page_size=2, page_token=token)
        )
        actions += [e.action for e in page.events]
        token = page.next_page_token
        if not token:
            break
    assert len(actions) == 5
    assert actions.count("placement.created") == 2
    other = await matcher.stub.ListAuditEvents(pb.ListAuditEventsRequest(tenant_id="globex"))
    assert list(other.events) == []
    assert second.placement_id in {
        e.placement_id
        for e in (await matcher.stub.ListAuditEvents(pb.ListAuditEventsRequest())).events
    }
