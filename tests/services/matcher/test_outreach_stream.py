"""StreamOutreachEvents: replay from a cursor, live delivery, resumption without gaps."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import (
    Matcher,
    invalid_field,
    placement_input,
    qbo_payment,
    reason_of,
)


async def _three_events(matcher: Matcher) -> list[pb.Placement]:
    placements = await matcher.place(placement_input("70", 10_000), placement_input("71", 10_000))
    await matcher.pay(qbo_payment("1", [("70", 4_000)]))  # balance changed
    await matcher.pay(qbo_payment("2", [("71", 10_000)]))  # stop
    await matcher.pay(qbo_payment("3", [], unapplied=6_000))  # pause of 70
    return placements


async def test_replay_from_the_start_in_commit_order(matcher: Matcher) -> None:
    first, second = await _three_events(matcher)
    events = await matcher.read_stream(3)
    assert [(e.type, e.placement_id) for e in events] == [
        (pb.OUTREACH_EVENT_TYPE_BALANCE_CHANGED, first.placement_id),
        (pb.OUTREACH_EVENT_TYPE_STOP, second.placement_id),
        (pb.OUTREACH_EVENT_TYPE_PAUSE, first.placement_id),
    ]
    assert events[0].balance.minor_units == 6_000
    assert events[1].reason == "paid out-of-band"
    assert events[1].status == pb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND
    assert events[2].status == pb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW
    assert all(e.tenant_id == "acme" and e.HasField("create_time") for e in events)
    assert len({e.event_id for e in events}) == 3
    assert len({e.cursor for e in events}) == 3


async def test_resume_from_a_cursor_misses_nothing_and_repeats_nothing(
    matcher: Matcher,
) -> None:
    await _three_events(matcher)
    everything = await matcher.read_stream(3)
    resumed = await matcher.read_stream(2, cursor=everything[0].cursor)
    assert [e.event_id for e in resumed] == [e.event_id for e in everything[1:]]

    # Nothing after the last cursor until something happens; then exactly that.
    call = matcher.stub.StreamOutreachEvents(
        pb.StreamOutreachEventsRequest(cursor=everything[-1].cursor)
    )
    reader = asyncio.ensure_future(call.read())
    await asyncio.sleep(0.2)  # a live stream test: prove nothing is delivered early
    assert not reader.done()
    # Another customer: the first one's 60.00 unapplied would pause a new placement at once.
    (placement,) = await matcher.place(placement_input("72", 5_000, customer="21"))
    await matcher.pay(qbo_payment("4", [("72", 5_000)], customer="21"))
    message = await asyncio.wait_for(reader, 5)
    call.cancel()
    assert isinstance(message, pb.StreamOutreachEventsResponse)
    assert message.event.placement_id == placement.placement_id
    assert message.event.type == pb.OUTREACH_EVENT_TYPE_STOP
    assert message.event.event_id not in {e.event_id for e in everything}


async def test_live_delivery_while_connected(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    call = matcher.stub.StreamOutreachEvents(pb.StreamOutreachEventsRequest())
    received: list[pb.OutreachEvent] = []

    async def consume() -> None:
        async for message in call:
            received.append(message.event)
            if len(received) == 2:
                return

    consumer = asyncio.ensure_future(consume())
    await matcher.pay(qbo_payment("1", [("70", 3_000)]))
    await matcher.pay(qbo_payment("2", [("70", 7_000)]))
    await asyncio.wait_for(consumer, 5)
    call.cancel()
    assert [e.type for e in received] == [
        pb.OUTREACH_EVENT_TYPE_BALANCE_CHANGED,
        pb.OUTREACH_EVENT_TYPE_STOP,
    ]
    assert [e.placement_id for e in received] == [placement.placement_id] * 2


async def test_tenant_filter(matcher: Matcher) -> None:
    await matcher.place(placement_input("70", 10_000))
    (other,) = await matcher.place(placement_input("70", 10_000), tenant="globex")
    await matcher.pay(qbo_payment("1", [("70", 10_000)]))
    await matcher.pay(qbo_payment("1", [("70", 10_000)]), tenant="globex")
    (event,) = await matcher.read_stream(1, tenant="globex")
    assert event.placement_id == other.placement_id


async def test_cancelled_consumers_release_their_connections(matcher: Matcher) -> None:
    await _three_events(matcher)
    for _ in range(15):  # more than the pool holds: leaked connections would hang here
        await matcher.read_stream(1)
    assert len(await matcher.read_stream(3)) == 3


async def test_cursor_not_issued_by_the_service_is_refused(matcher: Matcher) -> None:
    await _three_events(matcher)
    # garbage; "outreach:999999" (never issued); "other:1"
    for cursor in ("garbage", "b3V0cmVhY2g6OTk5OTk5", "b3RoZXI6MQ"):
        call = matcher.stub.StreamOutreachEvents(pb.StreamOutreachEventsRequest(cursor=cursor))
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
        assert invalid_field(info) == "cursor"
        assert reason_of(info) == "CURSOR_INVALID"


async def test_reconnecting_consumer_sees_every_event_once_under_concurrent_writers(
    matcher: Matcher,
) -> None:
    placements = await matcher.place(*(placement_input(str(100 + i), 1_000) for i in range(30)))
    writers = asyncio.gather(
        *(matcher.pay(qbo_payment(f"p{i}", [(str(100 + i), 1_000)])) for i in range(30))
    )
    # Hangs up after 7, while writers keep committing. What is checked is exactly once, not
    # speed: 30 concurrent decisions may take a while on a loaded machine.
    first = await matcher.read_stream(7, within=60)
    rest = await matcher.read_stream(23, cursor=first[-1].cursor, within=60)
    await writers

    received = [e.placement_id for e in first + rest]
    assert sorted(received) == sorted(p.placement_id for p in placements)  # each exactly once
    assert all(e.type == pb.OUTREACH_EVENT_TYPE_STOP for e in first + rest)
    assert len(await matcher.outbox()) == 30


async def test_idle_streams_hold_no_database_connection(
    matcher: Matcher, engine: AsyncEngine
) -> None:
    """Many consumers waiting for events borrow no pooled connection; one shared listener
    wakes them all when an event commits."""
    (placement,) = await matcher.place(placement_input("80", 10_000))
    await matcher.pay(qbo_payment("8", [("80", 1_000)]))
    (first,) = await matcher.read_stream(1)
    calls = [
        matcher.stub.StreamOutreachEvents(pb.StreamOutreachEventsRequest(cursor=first.cursor))
        for _ in range(25)  # more than the pool's 5 + 5 overflow
    ]
    readers = [asyncio.ensure_future(call.read()) for call in calls]
    try:
        pool = engine.pool
        assert isinstance(pool, QueuePool)
        for _ in range(100):  # the streams' first reads finish, then they wait
            if not pool.checkedout():
                break
            await asyncio.sleep(0.05)
        assert pool.checkedout() == 0
        assert not any(reader.done() for reader in readers)

        await matcher.pay(qbo_payment("9", [("80", 9_000)]))
        messages = await asyncio.wait_for(asyncio.gather(*readers), 5)
        for message in messages:
            assert isinstance(message, pb.StreamOutreachEventsResponse)
            assert message.event.placement_id == placement.placement_id
            assert message.event.type == pb.OUTREACH_EVENT_TYPE_STOP
    finally:
        for call in calls:
            call.cancel()
