"""Concurrent decisions on the same placement serialise: no lost update, no double count."""

from __future__ import annotations

import asyncio

from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.services.matcher.conftest import (
    Matcher,
    outcomes,
    placement_input,
    qbo_payment,
    status_name,
)


async def test_twenty_deliveries_of_one_payment_resolve_once(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    payment = qbo_payment("163", [("70", 10_000)])
    sources = [pb.CHANGE_SOURCE_WEBHOOK, pb.CHANGE_SOURCE_CDC] * 10

    replies = await asyncio.gather(*(matcher.pay(payment, source) for source in sources))

    results = sorted(outcome for decisions in replies for outcome in outcomes(decisions))
    assert results == ["DUPLICATE_NO_CHANGE"] * 19 + ["RESOLVED_OUT_OF_BAND"]
    after = await matcher.get(placement.placement_id)
    assert (status_name(after), after.balance.minor_units) == ("RESOLVED_OUT_OF_BAND", 0)
    assert after.version == placement.version + 1
    assert await matcher.outbox() == [("stop", "resolved_out_of_band", 0)]


async def test_twenty_different_payments_at_once_lose_no_update(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))

    replies = await asyncio.gather(
        *(matcher.pay(qbo_payment(f"p{i}", [("70", 100)])) for i in range(20)),
        matcher.portal(placement.placement_id, "pp-1", 1_000),
    )

    after = await matcher.get(placement.placement_id)
    assert after.balance.minor_units == 10_000 - 20 * 100 - 1_000
    assert after.version == placement.version + 21
    balances = sorted(balance for _, _, balance in await matcher.outbox())
    assert balances == sorted({b for b in balances})  # each event saw a distinct balance
    assert len(balances) == 21
    assert min(balances) == 7_000
    assert len(replies) == 21
