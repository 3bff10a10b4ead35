"""ApplyAccountingChanges: a company's changes decided in order in one call and one
transaction, each exactly as its own call would decide it; a malformed change is refused
alone; a deadlock with another writer makes the set be decided change by change."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sqlalchemy import Select, select, text

from aicollect.matching.v1 import matching_service_pb2 as pb
from services.matcher.models import PLACEMENTS
from tests.services.matcher.conftest import (
    REALM,
    TENANT,
    Matcher,
    invalid_field,
    outcomes,
    placement_input,
    qbo_invoice,
    qbo_payment,
    status_name,
)

OTHER = "globex"


def changes_request(
    *changes: pb.AccountingChange, tenant: str = TENANT
) -> pb.ApplyAccountingChangesRequest:
    return pb.ApplyAccountingChangesRequest(
        tenant_id=tenant,
        provider=pb.PROVIDER_QBO,
        company_id=REALM,
        changes=list(changes),
        source=pb.CHANGE_SOURCE_WEBHOOK,
        source_event_id="evt-1",
    )


def paid(payment: pb.AccountingPayment) -> pb.AccountingChange:
    return pb.AccountingChange(payment=payment)


def invoiced(invoice: pb.AccountingInvoice) -> pb.AccountingChange:
    return pb.AccountingChange(invoice=invoice)


def _seen(decision: pb.PlacementDecision) -> tuple[str, str, int, int, int]:
    """What a caller reads of a decision, without the placement's id."""
    return (
        decision.invoice_id,
        pb.DecisionOutcome.Name(decision.outcome),
        decision.status,
        decision.balance.minor_units,
        decision.outreach_event_type,
    )


async def test_a_set_decides_each_change_as_its_own_call_would(matcher: Matcher) -> None:
    books = [placement_input("70", 10_000), placement_input("71", 10_000)]
    books += [placement_input("72", 10_000)]
    ours = await matcher.place(*books)
    theirs = await matcher.place(*books, tenant=OTHER)
    history = [
        paid(qbo_payment("163", [("70", 10_000)])),  # pays 70 in full
        invoiced(qbo_invoice("70", 0, version="2", linked=[("163", pb.LINKED_TXN_TYPE_PAYMENT)])),
        paid(qbo_payment("164", [("71", 4_000)])),  # part of 71
        invoiced(qbo_invoice("72", 10_000, version="2", state=pb.ENTITY_STATE_VOIDED)),
        invoiced(qbo_invoice("99", 0)),  # never placed
    ]

    together = await matcher.stub.ApplyAccountingChanges(changes_request(*history))
    alone: list[list[pb.PlacementDecision]] = []
    for change in history:
        reply = await matcher.stub.ApplyAccountingChanges(changes_request(change, tenant=OTHER))
        alone.append(list(reply.results[0].decisions))

    assert [[_seen(d) for d in r.decisions] for r in together.results] == [
        [_seen(d) for d in decisions] for decisions in alone
    ]
    assert outcomes(together.results[0].decisions) == ["RESOLVED_OUT_OF_BAND"]
    assert outcomes(together.results[2].decisions) == ["PARTIAL_PAYMENT"]
    assert outcomes(together.results[4].decisions) == ["NO_PLACEMENT"]
    assert not any(r.HasField("refusal") for r in together.results)
    after = [await matcher.get(p.placement_id) for p in ours]
    assert [status_name(p) for p in after] == [
        "RESOLVED_OUT_OF_BAND",
        "ACTIVE",
        "PAUSED_PENDING_REVIEW",
    ]
    assert [p.balance.minor_units for p in after][:2] == [0, 6_000]
    # The same outreach as the calls one by one, placement by placement.
    assert [await matcher.outbox(p.placement_id) for p in ours] == [
        await matcher.outbox(p.placement_id) for p in theirs
    ]
    assert (await matcher.outbox(ours[0].placement_id))[0][0] == "stop"


async def test_a_later_change_sees_what_an_earlier_one_of_the_set_wrote(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    reply = await matcher.stub.ApplyAccountingChanges(
        changes_request(
            paid(qbo_payment("163", [("70", 6_000)])),
            paid(qbo_payment("164", [("70", 4_000)])),
            paid(qbo_payment("164", [("70", 4_000)])),  # the same version again
        )
    )

    assert [outcomes(r.decisions) for r in reply.results][:2] == [
        ["PARTIAL_PAYMENT"],
        ["RESOLVED_OUT_OF_BAND"],
    ]
    after = await matcher.get(placement.placement_id)
    assert status_name(after) == "RESOLVED_OUT_OF_BAND"
    assert after.balance.minor_units == 0
    assert after.resolving_payment_id == "164"
    # The repeated version changed nothing: one STOP, one resolution in the audit trail.
    assert [e[0] for e in await matcher.outbox()].count("stop") == 1
    resolved = [e for e in await matcher.audit(placement.placement_id) if "resolved" in e.action]
    assert len(resolved) == 1


async def test_a_malformed_change_is_refused_alone_and_the_others_are_decided(
    matcher: Matcher,
) -> None:
    first, second = await matcher.place(placement_input("70", 10_000), placement_input("71", 5_000))
    broken = qbo_payment("165", [("71", 5_000)])
    broken.payment_id = ""
    second_audit = await matcher.audit(second.placement_id)

    reply = await matcher.stub.ApplyAccountingChanges(
        changes_request(
            paid(qbo_payment("163", [("70", 10_000)])),
            paid(broken),
            pb.AccountingChange(),  # names nothing
        )
    )

    ok, refused, empty = reply.results
    assert outcomes(ok.decisions) == ["RESOLVED_OUT_OF_BAND"]
    assert not ok.HasField("refusal")
    assert refused.refusal.status == "INVALID_ARGUMENT"
    assert refused.refusal.reason == "FIELD_INVALID"
    assert "changes[1].payment.payment_id" in refused.refusal.message
    assert not refused.decisions
    assert empty.refusal.status == "INVALID_ARGUMENT"
    assert "changes[2]" in empty.refusal.message
    assert status_name(await matcher.get(first.placement_id)) == "RESOLVED_OUT_OF_BAND"
    untouched = await matcher.get(second.placement_id)
    assert (status_name(untouched), untouched.balance.minor_units) == ("ACTIVE", 5_000)
    assert await matcher.audit(second.placement_id) == second_audit
    assert [e[0] for e in await matcher.outbox()] == ["stop"]


async def test_a_set_of_refused_changes_answers_each_refusal_and_writes_nothing(
    matcher: Matcher,
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    audit_before = await matcher.audit_count()
    broken = qbo_payment("163", [("70", 10_000)])
    broken.ClearField("total_amount")

    reply = await matcher.stub.ApplyAccountingChanges(
        changes_request(paid(broken), pb.AccountingChange())
    )

    assert [r.refusal.status for r in reply.results] == ["INVALID_ARGUMENT"] * 2
    assert "changes[0].payment.total_amount" in reply.results[0].refusal.message
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 10_000
    assert await matcher.audit_count() == audit_before
    assert await matcher.outbox() == []


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (changes_request(), "changes"),
        (
            changes_request(*[paid(qbo_payment(str(i), [("70", 1)])) for i in range(1001)]),
            "changes",
        ),
        (changes_request(paid(qbo_payment("163", [("70", 1)])), tenant=""), "tenant_id"),
    ],
    ids=["no changes", "more than 1,000", "no tenant"],
)
async def test_a_malformed_call_is_refused_whole_and_changes_nothing(
    matcher: Matcher, request_: pb.ApplyAccountingChangesRequest, field: str
) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    audit_before = await matcher.audit_count()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await matcher.stub.ApplyAccountingChanges(request_)
    assert invalid_field(error) == field
    assert (await matcher.get(placement.placement_id)).balance.minor_units == 10_000
    assert await matcher.audit_count() == audit_before
    assert await matcher.outbox() == []


async def test_a_deadlock_with_another_writer_decides_the_set_change_by_change(
    matcher: Matcher,
) -> None:
    first, second = await matcher.place(
        placement_input("70", 10_000), placement_input("71", 10_000)
    )
    async with matcher.sessions() as other:
        # Another writer holds 71 and, once the set holds 70 and waits for 71, asks for 70:
        # PostgreSQL breaks the cycle by failing the set's transaction (the other writer
        # waits longer before it looks for a deadlock).
        await other.execute(text("SET LOCAL deadlock_timeout = '10s'"))
        await other.execute(_lock(second.placement_id))
        call = asyncio.ensure_future(
            matcher.stub.ApplyAccountingChanges(
                changes_request(
                    paid(qbo_payment("163", [("70", 10_000)])),
                    paid(qbo_payment("164", [("71", 3_000)])),
                )
            )
        )
        await _until_waiting_for_a_lock(matcher)
        await other.execute(_lock(first.placement_id))
        await other.rollback()
        reply = await asyncio.wait_for(call, 30)

    assert [outcomes(r.decisions) for r in reply.results] == [
        ["RESOLVED_OUT_OF_BAND"],
        ["PARTIAL_PAYMENT"],
    ]
    assert status_name(await matcher.get(first.placement_id)) == "RESOLVED_OUT_OF_BAND"
    assert (await matcher.get(second.placement_id)).balance.minor_units == 7_000
    assert [e[0] for e in await matcher.outbox()] == ["stop", "balance_changed"]


def _lock(placement_id: str) -> Select[tuple[str]]:
    return (
        select(PLACEMENTS.c.placement_id)
        .where(PLACEMENTS.c.placement_id == placement_id)
        .with_for_update()
    )


async def _until_waiting_for_a_lock(matcher: Matcher) -> None:
    """Until some transaction other than the test's waits for a row lock."""
    for _ in range(200):
        async with matcher.sessions() as session:
            waiting = await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the set never waited for the other writer's lock")
