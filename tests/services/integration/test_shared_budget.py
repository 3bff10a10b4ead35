"""Per-company request budgets hold across integration replicas: three replicas (each
with its own engine, HTTP client and budget) share one database and one emulator whose
per-realm limits are lowered to match the configured company-wide limits."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, suppress

import aiohttp
import grpc
import pytest_asyncio
from sqlalchemy import text

from aicollect.db.engine import make_engine
from emulators.qbo.config import CompanySpec
from services.integration.budget import Priority, RealmBudget, RequestLimits, SharedBudget
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
WAITS = text("SELECT waits FROM integration.request_budgets WHERE realm_id = :realm")


def ledger(deps: IntegrationDeps) -> SharedBudget:
    """A replica's company-wide ledger (its row entries are under its ``replica`` id)."""
    shared = deps.caller.budget.ledger
    assert isinstance(shared, SharedBudget)
    return shared


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
    starts: dict[str, list[Priority]] = {tenant: [] for tenant in REALMS}
    payments_queued: dict[str, int] = {}  # tenant -> bulk starts before the payments queued
    requests = emulator.state.api_requests
    bulk_share = PER_MINUTE - PER_MINUTE // 10  # bulk work leaves a tenth of the minute
    settled = asyncio.Event()  # each company has had its bulk share and both payments

    async def fetch(deps: IntegrationDeps, tenant: str, priority: Priority) -> None:
        async def company_info(realm_id: str, token: str) -> object:
            starts[tenant].append(priority)
            if priority == Priority.PAYMENT:
                paid_by.add((tenant, id(deps)))
            return await qbo_api(deps).company_info(realm_id, token)

        await deps.caller.call(tenant, company_info, priority=priority)
        done[tenant, priority] += 1
        if all(
            requests[realm] >= bulk_share and done[t, Priority.PAYMENT] == 2
            for t, realm in REALMS.items()
        ):
            settled.set()

    paid_by: set[tuple[str, int]] = set()  # (tenant, replica) whose payment started

    async def payments_known(tenant: str) -> bool:
        """Each payment started, or its replica's wait for it is in the company's row:
        from then on no replica is granted bulk work before it (a payment queued in a
        process is known to the others at its pump's next ask)."""
        async with replicas[0].sessions() as session:
            waits = await session.scalar(WAITS, {"realm": REALMS[tenant]}) or {}
        return all(
            (tenant, id(deps)) in paid_by
            or waits.get(ledger(deps).replica, [None])[0] == int(Priority.PAYMENT)
            for deps in replicas[:2]
        )

    def queued(tenant: str, priority: Priority, among: list[IntegrationDeps]) -> int:
        """Requests of ``priority`` for the company waiting in ``among`` or started."""
        waiting = sum(deps.caller.budget.waiting(REALMS[tenant])[priority] for deps in among)
        return waiting + starts[tenant].count(priority)

    async def until(ready: Callable[[str], bool]) -> None:
        """Until ``ready`` holds for each company; its start count is noted as it does."""
        pending = set(REALMS)
        async with asyncio.timeout(15):
            while pending:
                for tenant in [t for t in pending if ready(t)]:
                    payments_queued[tenant] = len(starts[tenant])
                    pending.discard(tenant)
                await asyncio.sleep(0.001)

    # Every replica floods both companies with bulk work (8 each: 24 a company, over its
    # minute). Once the flood is in the budgets' queues (each call first reads its token,
    # which on a loaded machine takes a while), two replicas each need a payment fetch.
    tasks = [
        asyncio.create_task(fetch(deps, tenant, Priority.BACKFILL))
        for deps in replicas
        for tenant in REALMS
        for _ in range(8)
    ]
    try:
        await until(lambda tenant: queued(tenant, Priority.BACKFILL, replicas) == 24)
        tasks += [
            asyncio.create_task(fetch(deps, tenant, Priority.PAYMENT))
            for deps in replicas[:2]
            for tenant in REALMS
        ]
        # The bound below counts from the moment every replica knows of both payments.
        async with asyncio.timeout(15):
            pending = set(REALMS)
            while pending:
                for tenant in list(pending):
                    if await payments_known(tenant):
                        payments_queued[tenant] = len(starts[tenant])
                        pending.discard(tenant)
                await asyncio.sleep(0.001)
        with suppress(TimeoutError):
            await asyncio.wait_for(settled.wait(), 15)
        await asyncio.sleep(0.5)  # nothing more starts within the minute
        for tenant, realm in REALMS.items():
            # Connecting the company read its CompanyInfo through the same budget: one
            # start of its minute. Each company then used its minute, whatever the other
            # did, and not one request more: no 429 caused by our own rate or concurrency.
            assert requests[realm] == bulk_share
            assert emulator.state.throttled[realm] == 0
            assert done[tenant, Priority.PAYMENT] == 2
            # The payments were not held behind the flood: both started before bulk work
            # had used its share, and at most the company's concurrency in bulk requests
            # (those already granted when the payments arrived) started in between.
            assert done[tenant, Priority.BACKFILL] == bulk_share - 1 - 2
            last_payment = max(i for i, p in enumerate(starts[tenant]) if p == Priority.PAYMENT)
            overtaken = starts[tenant][payments_queued[tenant] : last_payment]
            assert overtaken.count(Priority.BACKFILL) <= CONCURRENT, starts[tenant]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_429_seen_by_one_replica_pauses_the_company_for_all(
    replicas: list[IntegrationDeps], emulator: Emulator
) -> None:
    first, second, third = replicas
    # The third replica has been to the other company once (its connections are open):
    # what is timed below is the budget, not a cold start.
    await third.caller.call(OTHER_TENANT, qbo_api(third).company_info)
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
    limits = RequestLimits.of(concurrent=1)
    try:
        dead, alive = (
            RealmBudget(limits, shared=SharedBudget(engine, "qbo", limits, lease_seconds=1.0))
            for engine in engines
        )
        # A replica takes the company's only slot and is killed before releasing it.
        # (Its slot is never exited; the reference keeps it from being closed.)
        held = dead.slot(REALM_ID, Priority.PAYMENT)
        await held.__aenter__()
        started = time.monotonic()
        async with alive.slot(REALM_ID, Priority.PAYMENT):
            waited = time.monotonic() - started
        assert 0.5 <= waited < 3.0  # not before the lease lapsed, and not for ever
        await alive.close()
        del held
    finally:
        for engine in engines:
            await engine.dispose()


async def test_a_payment_waiting_in_one_replica_goes_before_bulk_waiting_in_another(
    database_url: str,
) -> None:
    engines = [make_engine(database_url, pool_size=2) for _ in range(3)]
    limits = RequestLimits.of(concurrent=1)  # one slot: no reserve, only the order counts
    budgets = [RealmBudget(limits, shared=SharedBudget(e, "qbo", limits)) for e in engines]
    holder, payments, bulk = budgets
    order: list[str] = []
    held, gate = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with holder.slot(REALM_ID, Priority.BACKFILL):
            held.set()
            await gate.wait()

    async def work(budget: RealmBudget, name: str, priority: Priority) -> None:
        async with budget.slot(REALM_ID, priority):
            order.append(name)

    async def waiting(priority: Priority) -> None:
        """Until the company's row shows a replica waiting with ``priority``."""
        async with asyncio.timeout(10):
            while True:
                async with engines[0].connect() as conn:
                    waits = (await conn.execute(WAITS, {"realm": REALM_ID})).scalar_one()
                if any(entry[0] == priority for entry in waits.values()):
                    return
                await asyncio.sleep(0.02)

    try:
        tasks = [asyncio.create_task(hold())]
        await asyncio.wait_for(held.wait(), 5)
        # Bulk work has waited longest, in another replica; then a payment arrives.
        tasks.append(asyncio.create_task(work(bulk, "bulk", Priority.BACKFILL)))
        await waiting(Priority.BACKFILL)
        tasks.append(asyncio.create_task(work(payments, "payment", Priority.PAYMENT)))
        await waiting(Priority.PAYMENT)
        gate.set()  # the slot frees: it is the payment's
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert order == ["payment", "bulk"]
    finally:
        for budget in budgets:
            await budget.close()
        for engine in engines:
            await engine.dispose()
