"""Per-company request budgets hold across integration replicas: three replicas (each
with its own engine, HTTP client and budget) share one database and one emulator whose
per-realm limits are lowered to match the configured company-wide limits."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress

import aiohttp
import grpc
import pytest_asyncio

from aicollect.db.engine import make_engine
from emulators.qbo.config import CompanySpec
from services.integration.budget import Priority, SharedBudget
from services.integration.deps import IntegrationDeps
from tests.conftest import REALM_ID, Emulator, qbo_api
from tests.helpers.connections import TENANT, connect, enable
from tests.helpers.replicas import replica

OTHER_TENANT = "globex"
OTHER_REALM = "4620816365000002"
PER_MINUTE = 20
CONCURRENT = 3
LIMITS = {
    "AICOLLECT_QBO_REQUESTS_PER_MINUTE": str(PER_MINUTE),
    "AICOLLECT_QBO_MAX_CONCURRENT": str(CONCURRENT),
}
REALMS = {TENANT: REALM_ID, OTHER_TENANT: OTHER_REALM}


async def _faults(emulator: Emulator, **values: object) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.put(f"{emulator.url}/_emulator/faults", json=values) as resp,
    ):
        assert resp.status == 200, await resp.text()


@pytest_asyncio.fixture
async def replicas(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    database_url: str,
    matcher_addr: str,
) -> AsyncIterator[list[IntegrationDeps]]:
    """Two companies connected, and three replicas with the limits lowered to match the
    emulator's (Intuit's 500 a minute and 10 at once, scaled down)."""
    emulator.state.create_company(
        CompanySpec(realm_id=OTHER_REALM, name="Globex", customers=1, invoices=1)
    )
    for tenant, realm in REALMS.items():
        await enable(integration_channel, tenant)
        assert (await connect(integration_channel, tenant, realm)).connected
    await _faults(
        emulator, requests_per_minute=PER_MINUTE, max_concurrent=CONCURRENT, latency_ms=50
    )
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                replica(database_url, emulator.url, matcher_addr, **LIMITS)
            )
            for _ in range(3)
        ]


async def test_three_replicas_stay_within_each_company_limits_payments_first(
    replicas: list[IntegrationDeps], emulator: Emulator
) -> None:
    done: Counter[tuple[str, Priority]] = Counter()
    requests = emulator.state.api_requests
    settled = asyncio.Event()  # each company has had its bulk share and both payments

    async def fetch(deps: IntegrationDeps, tenant: str, priority: Priority) -> None:
        await deps.caller.call(tenant, qbo_api(deps).company_info, priority=priority)
        done[tenant, priority] += 1
        if all(
            requests[realm] >= PER_MINUTE - PER_MINUTE // 10 and done[t, Priority.PAYMENT] == 2
            for t, realm in REALMS.items()
        ):
            settled.set()

    # Every replica floods both companies with bulk work (8 each: 24 a company, over its
    # minute), then two replicas each need a payment fetch behind the flood.
    tasks = [
        asyncio.create_task(fetch(deps, tenant, Priority.BACKFILL))
        for deps in replicas
        for tenant in REALMS
        for _ in range(8)
    ]
    await asyncio.sleep(0.2)
    tasks += [
        asyncio.create_task(fetch(deps, tenant, Priority.PAYMENT))
        for deps in replicas[:2]
        for tenant in REALMS
    ]
    try:
        with suppress(TimeoutError):
            await asyncio.wait_for(settled.wait(), 15)
        await asyncio.sleep(0.5)  # nothing more starts within the minute
        for tenant, realm in REALMS.items():
            # Each company used its minute (connecting it took one request; the payments'
            # reserve stays unused once they are through), whatever the other did, and not
            # one request more: no 429 caused by our own rate or concurrency.
            assert PER_MINUTE - PER_MINUTE // 10 <= requests[realm] <= PER_MINUTE
            assert emulator.state.throttled[realm] == 0
            # The payments got through behind 24 bulk requests: bulk work left them its
            # reserve (a tenth of the minute).
            assert done[tenant, Priority.PAYMENT] == 2
            assert done[tenant, Priority.BACKFILL] <= PER_MINUTE - PER_MINUTE // 10 - 1
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_429_seen_by_one_replica_pauses_the_company_for_all(
    replicas: list[IntegrationDeps], emulator: Emulator
) -> None:
    first, second, third = replicas
    await _faults(emulator, throttle_count=1, retry_after=2, realms=[REALM_ID])
    throttled = asyncio.Event()

    async def company_info(realm_id: str, token: str) -> object:
        try:
            return await qbo_api(first).company_info(realm_id, token)
        except Exception:
            throttled.set()
            raise

    throttled_call = asyncio.create_task(
        first.caller.call(TENANT, company_info, priority=Priority.CDC)
    )
    await asyncio.wait_for(throttled.wait(), 5)
    throttled_at = time.monotonic()
    await asyncio.sleep(0.2)  # the pause is recorded; another replica now wants the company

    other_company = time.monotonic()
    await third.caller.call(OTHER_TENANT, qbo_api(third).company_info)
    assert time.monotonic() - other_company < 1.0  # another company is not paused

    await second.caller.call(TENANT, qbo_api(second).company_info, priority=Priority.PAYMENT)
    assert time.monotonic() - throttled_at >= 1.9  # waited out Intuit's Retry-After
    await throttled_call
    assert emulator.state.throttled[REALM_ID] == 1  # nobody ran into the throttle again


async def test_a_dead_replicas_leases_expire(database_url: str) -> None:
    engines = [make_engine(database_url, pool_size=2) for _ in range(2)]
    try:
        dead, alive = (
            SharedBudget(engine, "qbo", per_minute=None, concurrent=1, lease_seconds=1.0)
            for engine in engines
        )
        # A replica takes the company's only slot and is killed before releasing it.
        # (Its grant is never exited; the reference keeps it from being closed.)
        held = dead.grant(REALM_ID, Priority.PAYMENT)
        await held.__aenter__()
        started = time.monotonic()
        async with alive.grant(REALM_ID, Priority.PAYMENT):
            waited = time.monotonic() - started
        assert 0.5 <= waited < 3.0  # not before the lease lapsed, and not for ever
        del held
    finally:
        for engine in engines:
            await engine.dispose()
