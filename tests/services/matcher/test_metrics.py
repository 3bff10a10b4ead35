"""The matcher's metrics: decisions by call and outcome, and the outreach stream's
consumers and lag, as an operator scraping /metrics sees them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.matching.v1 import matching_admin_service_pb2_grpc as magrpc
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from aicollect.rpc.client import internal_channel
from services.matcher.metrics import MatcherMetrics, StreamPositions
from services.matcher.server import build_server
from tests.conftest import INTERNAL_TOKEN
from tests.services.matcher.conftest import Matcher, placement_input, qbo_payment


@pytest_asyncio.fixture
async def observed(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[tuple[Matcher, str]]:
    metrics = MatcherMetrics()
    port = metrics.serve(0)
    server = build_server(
        sessions, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN, metrics=metrics
    )
    await server.start()
    channel = internal_channel(f"127.0.0.1:{server.port}", INTERNAL_TOKEN)
    try:
        yield (
            Matcher(
                pb_grpc.MatchingServiceStub(channel),
                magrpc.MatchingAdminServiceStub(channel),
                sessions,
            ),
            f"http://127.0.0.1:{port}/metrics",
        )
    finally:
        await channel.close(None)
        await server.stop(None)


async def _scrape(url: str) -> dict[str, float]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


async def test_decisions_and_stream_consumers_are_scraped(observed: tuple[Matcher, str]) -> None:
    matcher, url = observed
    await matcher.place(placement_input("90", 10_000))
    await matcher.pay(qbo_payment("1", [("90", 4_000)]))
    await matcher.pay(qbo_payment("2", [("90", 6_000)]))

    call = matcher.stub.StreamOutreachEvents(pb.StreamOutreachEventsRequest())
    first = await asyncio.wait_for(call.read(), 5)
    second = await asyncio.wait_for(call.read(), 5)
    assert isinstance(first, pb.StreamOutreachEventsResponse)
    assert isinstance(second, pb.StreamOutreachEventsResponse)
    values = await _scrape(url)
    assert (
        values['aicollect_matcher_decisions_total{call="payment",outcome="partial_payment"}'] == 1
    )
    assert (
        values['aicollect_matcher_decisions_total{call="payment",outcome="resolved_out_of_band"}']
        == 1
    )
    assert values['aicollect_matcher_decision_seconds_count{call="payment"}'] == 2
    assert values["aicollect_outreach_stream_consumers"] == 1
    assert values["aicollect_outreach_stream_lag_events"] == 0  # both events were sent

    call.cancel()
    for _ in range(100):
        if (await _scrape(url))["aicollect_outreach_stream_consumers"] == 0:
            break
        await asyncio.sleep(0.05)
    assert (await _scrape(url))["aicollect_outreach_stream_consumers"] == 0


def test_lag_is_the_slowest_open_streams_distance_to_the_newest_event() -> None:
    positions = StreamPositions()
    fast, slow = positions.open(), positions.open()
    positions.update(fast, delivered=120, newest=120)
    positions.update(slow, delivered=80, newest=120)
    assert (positions.consumers(), positions.max_lag()) == (2, 40)
    positions.close(slow)
    assert (positions.consumers(), positions.max_lag()) == (1, 0)
    positions.update(fast, delivered=0, newest=None)  # an empty outbox
    assert positions.max_lag() == 0
