"""The daily reports in the real processes (`aicollect run`'s): the matcher's scheduler fills
in the days it missed while it was down, once, across restarts, and the gateway serves
the report as JSON and CSV to the tenant's dashboard token."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import asyncpg
import jwt
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url

from aicollect.localstack import LocalStack, running_stack
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from aicollect.rpc.client import internal_channel
from tests.services.matcher.conftest import placement_input

TENANT = "report-co"

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def stack() -> AsyncIterator[LocalStack]:
    async with running_stack(
        extra_env={
            "AICOLLECT_SHUTDOWN_GRACE_SECONDS": "2",
            "AICOLLECT_REPORT_TICK_SECONDS": "0.5",
            "AICOLLECT_REPORT_GRACE_MINUTES": "0",
        }
    ) as running:
        yield running


async def _sql(stack: LocalStack, query: str) -> list[asyncpg.Record]:
    url = make_url(stack.database_url).set(drivername="postgresql")
    conn = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def _reports(stack: LocalStack) -> list[tuple[str, int]]:
    rows = await _sql(
        stack,
        f"SELECT day, version FROM matching.daily_reports WHERE tenant_id = '{TENANT}'"
        " ORDER BY day, version",
    )
    return [(r["day"].isoformat(), r["version"]) for r in rows]


async def _until(stack: LocalStack, count: int, within: float = 30.0) -> list[tuple[str, int]]:
    deadline = time.monotonic() + within
    while True:
        found = await _reports(stack)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_missed_days_are_made_once_by_the_matcher_process(stack: LocalStack) -> None:
    addr, token = stack.env["AICOLLECT_MATCHER_ADDR"], stack.env["AICOLLECT_INTERNAL_TOKEN"]
    async with internal_channel(addr, token) as channel:
        stub = pb_grpc.MatchingServiceStub(channel)
        reply = await stub.UpsertPlacements(
            pb.UpsertPlacementsRequest(
                tenant_id=TENANT,
                provider=pb.PROVIDER_QBO,
                company_id="9130",
                placements=[placement_input("70", 10_000)],
            )
        )
        assert reply.results
    # The matcher goes down; while it is down, three midnights pass for this tenant (its
    # first placement now dates from three days ago, UTC, the default zone).
    await stack.kill("matcher")
    await _sql(
        stack,
        "UPDATE matching.placements SET created_at = created_at - interval '3 days'"
        f" WHERE tenant_id = '{TENANT}'",
    )
    today = datetime.now(UTC).date()
    expected = [((today - timedelta(days=n)).isoformat(), 1) for n in (3, 2, 1)]

    await stack.restart("matcher")
    assert await _until(stack, 3) == expected
    # Killed and back again: nothing is made twice.
    await stack.kill("matcher")
    await stack.restart("matcher")
    await asyncio.sleep(2.0)  # several scheduler rounds
    assert await _reports(stack) == expected
    events = await _sql(
        stack,
        "SELECT report_day FROM matching.outreach_events"
        f" WHERE type = 'report_ready' AND tenant_id = '{TENANT}' ORDER BY id",
    )
    assert [(r["report_day"].isoformat(), 1) for r in events] == expected

    # The dashboard reads yesterday's report through the gateway.
    claims = {"sub": "jane@report.test", "tenant_id": TENANT, "exp": int(time.time()) + 600}
    bearer = jwt.encode(claims, stack.env["AICOLLECT_JWT_SECRET"], algorithm="HS256")
    yesterday = expected[-1][0]
    gateway = stack.gateway_url
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {bearer}"}) as http:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the gateway reconnects to the restarted matcher
            async with http.get(f"{gateway}/readyz") as resp:
                if resp.status == 200:
                    break
            await asyncio.sleep(0.2)
        async with http.get(f"{gateway}/v1/reconciliation-reports/{yesterday}") as resp:
            assert resp.status == 200, await resp.text()
            body = await resp.json()
        assert body["key"] == {"tenant_id": TENANT, "day": yesterday, "version": 1}
        assert body["currencies"] == []  # a quiet day: present, empty
        async with http.get(f"{gateway}/v1/reconciliation-reports/{yesterday}.csv") as resp:
            assert resp.status == 200
            rows = list(csv.reader(io.StringIO(await resp.text())))
        assert rows[0][:5] == ["day", "version", "time_zone", "currency", "record"]
        assert rows[1:] == []
