"""Unapplied money the matcher already knows, then the placement: a new placement whose
customer's unapplied money covers its balance starts paused pending review, exactly as if
the payment had been read after it (docs/matching.md, "Unapplied money").

Through the real matcher (gRPC, PostgreSQL); the outbox is read straight from its table,
so "no other event" is proved, not assumed.
"""

from __future__ import annotations

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import (
    CUSTOMER,
    REALM,
    TENANT,
    Matcher,
    placement_input,
    qbo_payment,
    status_name,
)


async def test_covering_unapplied_money_recorded_first_places_the_invoice_paused(
    matcher: Matcher,
) -> None:
    assert await matcher.pay(qbo_payment("200", [], unapplied=10_000)) == []

    (placement,) = await matcher.place(placement_input("70", 10_000))

    assert status_name(placement) == "PAUSED_PENDING_REVIEW"
    assert placement.balance.minor_units == 10_000  # never resolved on this evidence
    assert "QBO payment 200" in placement.review_reason
    assert "100.00 USD unapplied" in placement.review_reason
    # Outreach is told to pause (the same event as when the payment comes second), and
    # nothing ever told it to go on: a paused placement is no active one.
    assert await matcher.outbox() == [("pause", "paused_pending_review", 10_000)]
    listed = await matcher.stub.ListPlacements(
        pb.ListPlacementsRequest(tenant_id=TENANT, statuses=[pb.PLACEMENT_STATUS_ACTIVE])
    )
    assert list(listed.placements) == []
    created, paused = await matcher.audit(placement.placement_id)
    assert created.action == "placement.created"
    assert paused.action == "placement.paused_unapplied_payment"
    assert paused.actor == "system"
    assert paused.details["source"] == "upsert"
    assert paused.details["payment_id"] == "200"
    assert paused.details["unapplied_minor_units"] == "10000"
    assert paused.details["customer_id"] == CUSTOMER
    assert paused.details["previous_status"] == "active"
    assert paused.details["outreach_event"] == "pause"
    assert paused.reason == placement.review_reason


async def test_the_same_as_when_the_payment_is_read_after_the_placement(
    matcher: Matcher,
) -> None:
    """Order does not matter: status, reason and event are those of the existing rule."""
    (later,) = await matcher.place(placement_input("70", 10_000, customer="21"))
    await matcher.pay(qbo_payment("300", [], unapplied=10_000, customer="21"))
    await matcher.pay(qbo_payment("200", [], unapplied=10_000))
    (first,) = await matcher.place(placement_input("71", 10_000))

    after = await matcher.get(later.placement_id)
    assert status_name(first) == status_name(after) == "PAUSED_PENDING_REVIEW"
    assert (
        first.review_reason.replace("200", "300").replace(f"customer {CUSTOMER}", "customer 21")
        == after.review_reason
    )
    assert [kind for kind, _, _ in await matcher.outbox(first.placement_id)] == ["pause"]
    assert [kind for kind, _, _ in await matcher.outbox(after.placement_id)] == ["pause"]


async def test_only_placements_the_money_covers_start_paused(matcher: Matcher) -> None:
    """One batch: the covered invoice (within the tolerance) starts paused; a larger one of
    the same customer, and any invoice of another customer, start active with no event."""
    await matcher.pay(qbo_payment("200", [], unapplied=9_999))

    covered, larger, other = await matcher.place(
        placement_input("70", 10_000),
        placement_input("71", 25_000),
        placement_input("72", 10_000, customer="99"),
    )

    assert status_name(covered) == "PAUSED_PENDING_REVIEW"
    assert status_name(larger) == "ACTIVE"
    assert status_name(other) == "ACTIVE"
    assert await matcher.outbox() == [("pause", "paused_pending_review", 10_000)]


async def test_less_than_the_balance_places_it_active(matcher: Matcher) -> None:
    await matcher.pay(qbo_payment("200", [], unapplied=9_000))

    (placement,) = await matcher.place(placement_input("70", 10_000))

    assert status_name(placement) == "ACTIVE"
    assert placement.review_reason == ""
    assert await matcher.outbox() == []
    assert [e.action for e in await matcher.audit(placement.placement_id)] == ["placement.created"]


async def test_a_voided_payment_places_it_active(matcher: Matcher) -> None:
    await matcher.pay(qbo_payment("200", [], unapplied=10_000))
    voided = qbo_payment("200", [], total=0, version="1", state=pb.ENTITY_STATE_VOIDED)
    await matcher.pay(voided)

    (placement,) = await matcher.place(placement_input("70", 10_000))

    assert status_name(placement) == "ACTIVE"
    assert await matcher.outbox() == []


async def test_another_customers_money_places_it_active(matcher: Matcher) -> None:
    await matcher.pay(qbo_payment("200", [], unapplied=50_000, customer="99"))

    (placement,) = await matcher.place(placement_input("70", 10_000))

    assert status_name(placement) == "ACTIVE"
    assert await matcher.outbox() == []


async def test_another_companys_money_places_it_active(matcher: Matcher) -> None:
    """Payments are per company: the same customer id in another realm is someone else."""
    await matcher.stub.ApplyAccountingPayment(
        pb.ApplyAccountingPaymentRequest(
            tenant_id=TENANT,
            provider=pb.PROVIDER_QBO,
            company_id=f"{REALM}0",
            payment=qbo_payment("200", [], unapplied=10_000),
            source=pb.CHANGE_SOURCE_WEBHOOK,
        )
    )

    (placement,) = await matcher.place(placement_input("70", 10_000))

    assert status_name(placement) == "ACTIVE"


async def test_a_repeated_upsert_changes_nothing(matcher: Matcher) -> None:
    await matcher.pay(qbo_payment("200", [], unapplied=10_000))
    (placement,) = await matcher.place(placement_input("70", 10_000))

    (again,) = await matcher.place(placement_input("70", 10_000))

    assert again.placement_id == placement.placement_id
    assert (status_name(again), again.version) == ("PAUSED_PENDING_REVIEW", placement.version)
    assert len(await matcher.outbox()) == 1


async def test_a_debtor_paused_by_a_person_gets_one_pause(matcher: Matcher) -> None:
    """A person's debtor pause and the unapplied money both hold the new placement: one
    PAUSE event, and the placement waits for review (the person's resume will not start it)."""
    (owing_more,) = await matcher.place(placement_input("69", 50_000))
    await matcher.stub.PauseOutreach(
        pb.PauseOutreachRequest(
            tenant_id=TENANT,
            target=pb.OutreachTarget(
                debtor=pb.OutreachDebtor(company_id=REALM, customer_id=CUSTOMER)
            ),
            actor="sam@acme.example",
            reason="dispute",
        )
    )
    await matcher.pay(qbo_payment("200", [], unapplied=10_000))

    (placement,) = await matcher.place(placement_input("70", 10_000))

    assert status_name(placement) == "PAUSED_PENDING_REVIEW"
    assert await matcher.outbox(placement.placement_id) == [
        ("pause", "paused_pending_review", 10_000)
    ]
    assert status_name(await matcher.get(owing_more.placement_id)) == "ACTIVE"
