"""PauseOutreach / ResumeOutreach: outreach paused by a person, per placement, per debtor
and tenant-wide (docs/pausing-outreach.md), through the real matcher (gRPC, PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.matching.v1 import matching_service_pb2 as pb
from services.matcher import facts_in, matching
from services.matcher.models import AuditEvent, OutreachPause
from tests.helpers.grpcurl import grpcurl
from tests.services.matcher.conftest import (
    CUSTOMER,
    REALM,
    TENANT,
    Matcher,
    invalid_field,
    placement_input,
    qbo_payment,
    reason_of,
    status_name,
)

ACTOR = "sam@acme.example"


def one(placement_id: str) -> pb.OutreachTarget:
    return pb.OutreachTarget(placement_id=placement_id)


def debtor(customer: str = CUSTOMER) -> pb.OutreachTarget:
    return pb.OutreachTarget(debtor=pb.OutreachDebtor(company_id=REALM, customer_id=customer))


EVERYTHING = pb.OutreachTarget(all_placements=True)


async def pause(
    matcher: Matcher, target: pb.OutreachTarget, *, tenant: str = TENANT, reason: str = "dispute"
) -> pb.PauseOutreachResponse:
    return await matcher.stub.PauseOutreach(
        pb.PauseOutreachRequest(tenant_id=tenant, target=target, actor=ACTOR, reason=reason)
    )


async def resume(
    matcher: Matcher, target: pb.OutreachTarget, *, tenant: str = TENANT
) -> pb.ResumeOutreachResponse:
    return await matcher.stub.ResumeOutreach(
        pb.ResumeOutreachRequest(tenant_id=tenant, target=target, actor=ACTOR, reason="settled")
    )


async def test_a_placement_pause_emits_pause_then_resume_exactly_once(matcher: Matcher) -> None:
    first, second = await matcher.place(placement_input("70", 10_000), placement_input("71"))
    paused = await pause(matcher, one(first.placement_id))
    assert paused.placements_paused == 1
    assert paused.pause.paused_by == ACTOR
    assert paused.pause.target.placement_id == first.placement_id
    assert await matcher.outbox() == [("pause", "active", 10_000)]
    assert (await matcher.get(first.placement_id)).outreach_paused
    assert not (await matcher.get(second.placement_id)).outreach_paused

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await pause(matcher, one(first.placement_id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(info) == "OUTREACH_ALREADY_PAUSED"

    resumed = await resume(matcher, one(first.placement_id))
    assert resumed.placements_resumed == 1
    assert resumed.pause.resume_reason == "settled"
    assert await matcher.outbox(first.placement_id) == [
        ("pause", "active", 10_000),
        ("resume", "active", 10_000),
    ]
    assert await matcher.outbox(second.placement_id) == []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await resume(matcher, one(first.placement_id))
    assert reason_of(info) == "OUTREACH_NOT_PAUSED"
    actions = [e.action for e in await matcher.audit(first.placement_id)]
    assert actions == ["placement.created", "outreach.paused", "outreach.resumed"]
    # Nothing about the placement itself changed.
    after = await matcher.get(first.placement_id)
    assert (after.version, status_name(after), after.outreach_paused) == (
        first.version,
        "ACTIVE",
        False,
    )


async def test_a_payment_during_a_pause_resolves_and_nothing_resumes(matcher: Matcher) -> None:
    paid, other = await matcher.place(placement_input("70", 10_000), placement_input("71", 5_000))
    assert (await pause(matcher, debtor())).placements_paused == 2
    await matcher.pay(qbo_payment("160", [("70", 10_000)]))
    assert status_name(await matcher.get(paid.placement_id)) == "RESOLVED_OUT_OF_BAND"
    assert await matcher.outbox(paid.placement_id) == [
        ("pause", "active", 10_000),
        ("stop", "resolved_out_of_band", 0),
    ]
    # The debtor's resume resumes only what is still active.
    assert (await resume(matcher, debtor())).placements_resumed == 1
    assert [kind for kind, _, _ in await matcher.outbox(paid.placement_id)] == ["pause", "stop"]
    assert [kind for kind, _, _ in await matcher.outbox(other.placement_id)] == [
        "pause",
        "resume",
    ]


async def test_a_part_payment_during_a_pause_does_not_tell_outreach_to_go_on(
    matcher: Matcher,
) -> None:
    """BALANCE_CHANGED means "continue with the new balance": held back while paused; the
    RESUME that ends the pause carries the balance then."""
    (placement,) = await matcher.place(placement_input("70", 10_000))
    pid = placement.placement_id
    await pause(matcher, one(pid))
    (decision,) = await matcher.pay(qbo_payment("160", [("70", 4_000)]))
    # The answer says no event went out.
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_UNSPECIFIED
    after = await matcher.get(pid)
    assert (status_name(after), after.balance.minor_units) == ("ACTIVE", 6_000)
    assert await matcher.outbox(pid) == [("pause", "active", 10_000)]
    await resume(matcher, one(pid))
    assert await matcher.outbox(pid) == [("pause", "active", 10_000), ("resume", "active", 6_000)]
    (decision,) = await matcher.pay(qbo_payment("161", [("70", 1_000)]))
    assert decision.outreach_event_type == pb.OUTREACH_EVENT_TYPE_BALANCE_CHANGED
    assert (await matcher.outbox(pid))[-1] == ("balance_changed", "active", 5_000)


async def test_a_restore_does_not_resume_a_paused_placement(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    pid = placement.placement_id
    await pause(matcher, one(pid))
    await matcher.pay(qbo_payment("163", [("70", 10_000)]))
    restored = await matcher.restore(await matcher.get(pid))
    assert (status_name(restored), restored.outreach_paused) == ("ACTIVE", True)
    assert [kind for kind, _, _ in await matcher.outbox(pid)] == ["pause", "stop"]
    await resume(matcher, one(pid))
    assert await matcher.outbox(pid) == [
        ("pause", "active", 10_000),
        ("stop", "resolved_out_of_band", 0),
        ("resume", "active", 10_000),
    ]


@pytest.mark.parametrize("scope", ["debtor", "tenant"])
async def test_a_new_placement_of_a_paused_debtor_or_tenant_starts_paused(
    matcher: Matcher, scope: str
) -> None:
    target = debtor() if scope == "debtor" else EVERYTHING
    (existing,) = await matcher.place(placement_input("70"))
    await pause(matcher, target)
    (new,) = await matcher.place(placement_input("71", 3_000))
    assert await matcher.outbox(new.placement_id) == [("pause", "active", 3_000)]
    (entry,) = [e for e in await matcher.audit(new.placement_id) if "paused" in e.action]
    assert entry.action == "placement.outreach_paused"
    # Another debtor's placement is not touched by a debtor pause.
    (stranger,) = await matcher.place(placement_input("72", customer="99"))
    expected = [] if scope == "debtor" else [("pause", "active", 10_000)]
    assert await matcher.outbox(stranger.placement_id) == expected
    await resume(matcher, target)
    for p in (existing, new):
        assert [kind for kind, _, _ in await matcher.outbox(p.placement_id)] == [
            "pause",
            "resume",
        ]


async def test_a_tenant_resume_keeps_a_placement_and_a_debtor_paused(matcher: Matcher) -> None:
    own, debtors, free = await matcher.place(
        placement_input("70"), placement_input("71", customer="30"), placement_input("72")
    )
    await pause(matcher, one(own.placement_id))
    await pause(matcher, debtor("30"))
    assert (await pause(matcher, EVERYTHING)).placements_paused == 1  # only the free one
    assert (await resume(matcher, EVERYTHING)).placements_resumed == 1
    assert [k for k, _, _ in await matcher.outbox(free.placement_id)] == ["pause", "resume"]
    assert [k for k, _, _ in await matcher.outbox(own.placement_id)] == ["pause"]
    assert [k for k, _, _ in await matcher.outbox(debtors.placement_id)] == ["pause"]
    placements = await matcher.stub.ListPlacements(pb.ListPlacementsRequest(tenant_id=TENANT))
    assert {p.placement_id: p.outreach_paused for p in placements.placements} == {
        own.placement_id: True,
        debtors.placement_id: True,
        free.placement_id: False,
    }
    listed = await matcher.stub.ListOutreachPauses(pb.ListOutreachPausesRequest(tenant_id=TENANT))
    assert {p.target.WhichOneof("target") for p in listed.pauses} == {"placement_id", "debtor"}
    every = await matcher.stub.ListOutreachPauses(
        pb.ListOutreachPausesRequest(tenant_id=TENANT, include_resumed=True)
    )
    assert len(every.pauses) == 3


async def _nothing_stored(matcher: Matcher) -> None:
    async with matcher.sessions() as session:
        pauses = (await session.execute(select(func.count(OutreachPause.pause_id)))).scalar_one()
        audits = (
            await session.execute(
                select(func.count(AuditEvent.id)).where(AuditEvent.action.like("%outreach%"))
            )
        ).scalar_one()
    assert (pauses, audits) == (0, 0)
    assert await matcher.outbox() == []


async def test_bad_input_is_refused_and_changes_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70"))
    (elsewhere,) = await matcher.place(placement_input("70"), tenant="globex")
    cases: list[tuple[pb.PauseOutreachRequest, str]] = [
        (pb.PauseOutreachRequest(target=EVERYTHING, actor=ACTOR, reason="r"), "tenant_id"),
        (pb.PauseOutreachRequest(tenant_id=TENANT, actor=ACTOR, reason="r"), "target"),
        (
            pb.PauseOutreachRequest(
                tenant_id=TENANT,
                target=pb.OutreachTarget(all_placements=False),
                actor=ACTOR,
                reason="r",
            ),
            "target",
        ),
        (pb.PauseOutreachRequest(tenant_id=TENANT, target=EVERYTHING, reason="r"), "actor"),
        (pb.PauseOutreachRequest(tenant_id=TENANT, target=EVERYTHING, actor=ACTOR), "reason"),
        (
            pb.PauseOutreachRequest(
                tenant_id=TENANT,
                target=pb.OutreachTarget(debtor=pb.OutreachDebtor(company_id=REALM)),
                actor=ACTOR,
                reason="r",
            ),
            "customer_id",
        ),
    ]
    for request, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.stub.PauseOutreach(request)
        assert invalid_field(info) == field, request
    for target in (one("nope"), one(elsewhere.placement_id), debtor("nobody")):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pause(matcher, target)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await resume(matcher, one(placement.placement_id))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await _nothing_stored(matcher)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def _place_many(matcher: Matcher, count: int) -> None:
    for start in range(0, count, 1000):
        inputs = [
            placement_input(str(10_000 + i), 1_000 + i, customer=str(i % 50))
            for i in range(start, min(count, start + 1000))
        ]
        await matcher.place(*inputs[:1])  # the first through place(), which reads it back
        await matcher.stub.UpsertPlacements(
            pb.UpsertPlacementsRequest(
                tenant_id=TENANT,
                provider=pb.PROVIDER_QBO,
                company_id=REALM,
                placements=inputs[1:],
            )
        )


async def test_a_tenant_wide_pause_is_set_based(matcher: Matcher, engine: AsyncEngine) -> None:
    """Thousands of placements: the pause and the resume take the same handful of
    statements as for one placement, and each placement gets exactly one event."""
    # AICOLLECT_PAUSE_PLACEMENTS=30000 measures a large tenant (docs/pausing-outreach.md).
    many = int(os.environ.get("AICOLLECT_PAUSE_PLACEMENTS", "3000"))
    await _place_many(matcher, many)
    with statements(engine) as executed:
        started = time.perf_counter()
        paused = await pause(matcher, EVERYTHING, reason="disconnect and stop all outreach")
        took = time.perf_counter() - started
    assert paused.placements_paused == many
    # Seen (the pause's own statements), and not one per placement.
    assert any("INSERT INTO matching.outreach_events" in sql for sql in executed)
    assert len(executed) < 15, executed
    with statements(engine) as executed:
        started = time.perf_counter()
        resumed = await resume(matcher, EVERYTHING)
        took_resume = time.perf_counter() - started
    assert resumed.placements_resumed == many
    assert 3 <= len(executed) < 15, executed
    kinds = await matcher.outbox()
    assert (kinds.count(("pause", "active", 1_000)), len(kinds)) == (1, 2 * many)
    async with matcher.sessions() as session:
        audits = (
            await session.execute(
                select(func.count(AuditEvent.id)).where(
                    AuditEvent.action.in_(
                        ["placement.outreach_paused", "placement.outreach_resumed"]
                    )
                )
            )
        ).scalar_one()
    assert audits == 2 * many
    print(f"tenant-wide pause of {many} placements: {took:.2f} s, resume {took_resume:.2f} s")


async def test_a_placement_created_while_a_tenant_pause_commits_is_paused_once(
    matcher: Matcher,
) -> None:
    """Intake holds the tenant's pause lock (shared) until it commits: a pause asked for
    meanwhile waits, then sees the new placement. Neither side misses it, neither doubles."""
    request = pb.UpsertPlacementsRequest(
        tenant_id=TENANT,
        provider=pb.PROVIDER_QBO,
        company_id=REALM,
        placements=[placement_input("70")],
    )
    async with matcher.sessions.begin() as session:
        (created,) = await matching.upsert_placements(
            session, TENANT, "qbo", REALM, facts_in.placements_in(request)
        )
        pausing = asyncio.create_task(pause(matcher, EVERYTHING))
        await asyncio.sleep(0.5)
        assert not pausing.done()  # waiting for the intake to commit
    paused = await asyncio.wait_for(pausing, 10)
    assert paused.placements_paused == 1
    assert await matcher.outbox(created.placement_id) == [("pause", "active", 10_000)]


async def test_the_documented_grpcurl_commands_work(matcher: Matcher, matcher_addr: str) -> None:
    """docs/pausing-outreach.md, "Over gRPC (support)", as support runs it."""
    (placement,) = await matcher.place(placement_input("70"))
    target = {"debtor": {"company_id": REALM, "customer_id": CUSTOMER}}
    paused = await grpcurl(
        matcher_addr,
        "PauseOutreach",
        {"tenant_id": TENANT, "target": target, "actor": ACTOR, "reason": "ticket 815"},
    )
    assert paused["placements_paused"] == 1
    listed = await grpcurl(matcher_addr, "ListOutreachPauses", {"tenant_id": TENANT})
    assert [p["target"] for p in listed["pauses"]] == [
        {"debtor": {"company_id": REALM, "customer_id": CUSTOMER}}
    ]
    await grpcurl(
        matcher_addr,
        "ResumeOutreach",
        {"tenant_id": TENANT, "target": target, "actor": ACTOR, "reason": "settled"},
    )
    assert [k for k, _, _ in await matcher.outbox(placement.placement_id)] == ["pause", "resume"]
