"""The per-realm request budget and QBO call retries (Intuit's limits, 429s, 5xx)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import grpc
import pytest

from aicollect.db.engine import make_engine
from aicollect.errors import Unavailable
from services.integration.budget import Priority, RealmBudget, RequestLimits, SharedBudget
from services.integration.deps import IntegrationDeps
from services.integration.providers.xero.platform import XERO_LIMITS
from tests.conftest import Emulator, qbo_api
from tests.helpers.connections import TENANT, connect, enable


async def test_concurrency_cap_per_realm() -> None:
    budget = RealmBudget(RequestLimits.of(per_minute=None, concurrent=3))
    in_flight = peak = 0

    async def work(realm: str) -> None:
        nonlocal in_flight, peak
        async with budget.slot(realm, Priority.CDC):
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.01)
            in_flight -= 1

    await asyncio.gather(*(work("r1") for _ in range(20)))
    assert peak == 3
    # Another realm has its own budget.
    peak = 0
    await asyncio.gather(*(work("r1") for _ in range(3)), *(work("r2") for _ in range(3)))
    assert peak == 6


async def test_per_minute_cap_holds_the_excess_back() -> None:
    budget = RealmBudget(RequestLimits.of(per_minute=5, concurrent=None))
    started = []

    async def work() -> None:
        async with budget.slot("r1", Priority.BACKFILL):
            started.append(time.monotonic())

    tasks = [asyncio.create_task(work()) for _ in range(7)]
    await asyncio.sleep(0.2)
    assert len(started) == 5  # the 6th and 7th wait for the rolling minute
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_payments_go_first() -> None:
    budget = RealmBudget(RequestLimits.of(per_minute=None, concurrent=1))
    order: list[str] = []
    gate = asyncio.Event()

    async def hold() -> None:
        async with budget.slot("r1", Priority.BACKFILL):
            await gate.wait()

    async def work(name: str, priority: Priority) -> None:
        async with budget.slot("r1", priority):
            order.append(name)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(work("backfill", Priority.BACKFILL)),
        asyncio.create_task(work("cdc", Priority.CDC)),
        asyncio.create_task(work("payment", Priority.PAYMENT)),
    ]
    await asyncio.sleep(0.01)
    gate.set()
    await asyncio.gather(holder, *waiting)
    assert order == ["payment", "cdc", "backfill"]


async def test_pause_blocks_until_it_ends() -> None:
    budget = RealmBudget(RequestLimits.of(per_minute=None, concurrent=None))
    await budget.throttled("r1", 0.3)
    started = time.monotonic()
    async with budget.slot("r1", Priority.PAYMENT):
        waited = time.monotonic() - started
    assert waited >= 0.29


async def test_the_metrics_show_who_waits_for_the_budget(
    integration_deps: IntegrationDeps,
) -> None:
    """On call, ``aicollect_request_budget_waiting`` says whether payments are held back by
    a company's request budget, and how much bulk work queues behind them."""
    budget = integration_deps.budgets["qbo"]
    registry = integration_deps.metrics.registry
    realm = f"paused-{uuid.uuid4().hex[:8]}"

    def waiting(priority: str) -> float | None:
        return registry.get_sample_value(
            "aicollect_request_budget_waiting", {"provider": "qbo", "priority": priority}
        )

    assert waiting("payment") == 0
    async with budget.slot(realm, Priority.CDC):  # the company's first request
        pass
    await budget.throttled(realm, 30)  # then Intuit throttles it: everything waits

    async def call(priority: Priority) -> None:
        async with budget.slot(realm, priority):
            raise AssertionError("the company is paused")

    tasks = [asyncio.create_task(call(p)) for p in (Priority.PAYMENT, *[Priority.BACKFILL] * 2)]
    try:
        await asyncio.sleep(0.2)
        assert (waiting("payment"), waiting("backfill"), waiting("cdc")) == (1, 2, 0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert (waiting("payment"), waiting("backfill")) == (0, 0)


async def _faults(emulator: Emulator, **values: object) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.url}/_emulator/faults", json=values) as resp,
    ):
        assert resp.status == 200, await resp.text()


async def test_forced_429s_slow_the_call_but_it_succeeds(
    integration_channel: grpc.aio.Channel, integration_deps: IntegrationDeps, emulator: Emulator
) -> None:
    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    await _faults(emulator, throttle_count=2, retry_after=1)
    started = time.monotonic()
    info = await integration_deps.caller.call(TENANT, qbo_api(integration_deps).company_info)
    assert info["CompanyName"] == "Acme Widgets LLC"
    assert time.monotonic() - started >= 1.9  # honoured Intuit's Retry-After twice
    assert integration_deps.caller.budget.throttle_pauses == 2


async def test_5xx_is_retried_then_reported_unavailable(
    integration_channel: grpc.aio.Channel, integration_deps: IntegrationDeps, emulator: Emulator
) -> None:
    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    await _faults(emulator, error_rate=1.0, error_status=503)
    with pytest.raises(Unavailable):
        await integration_deps.caller.call(TENANT, qbo_api(integration_deps).company_info)
    assert emulator.state.faults.injected["error"] == 5  # five attempts, then a clear error


async def test_bulk_work_leaves_payments_a_reserve() -> None:
    budget = RealmBudget(RequestLimits.of(per_minute=None, concurrent=10))
    in_flight = peak = 0
    gate = asyncio.Event()

    async def bulk() -> None:
        nonlocal in_flight, peak
        async with budget.slot("r1", Priority.BACKFILL):
            in_flight += 1
            peak = max(peak, in_flight)
            await gate.wait()
            in_flight -= 1

    flood = [asyncio.create_task(bulk()) for _ in range(20)]
    await asyncio.sleep(0.01)
    assert peak == 8  # a fifth of the concurrency is kept for payments and webhooks
    async with asyncio.timeout(1):  # a payment starts at once, behind 20 bulk requests
        async with budget.slot("r1", Priority.PAYMENT):
            pass
    gate.set()
    await asyncio.gather(*flood)
    assert peak == 8


async def _payments_during_a_bulk_flood(budget: RealmBudget) -> None:
    """Xero's 60 a minute: a bulk job (a large confirmation) asks for far more than its
    share while debtors pay, more payments than the minute's reserve of 6. Each payment
    starts at once: bulk work spread its share over the minute instead of using it in the
    first second, when the 7th payment would have waited for that minute to pass."""
    realm = f"xero-{uuid.uuid4()}"
    bulk_starts: list[float] = []

    async def bulk() -> None:
        async with budget.slot(realm, Priority.BACKFILL):
            bulk_starts.append(time.monotonic())

    flood = [asyncio.create_task(bulk()) for _ in range(200)]
    try:
        await asyncio.sleep(0.5)
        for _ in range(20):  # the webhooks' re-reads of paid invoices, one after another
            async with asyncio.timeout(5):  # not the rest of the minute
                async with budget.slot(realm, Priority.WEBHOOK):
                    pass
        # Bulk work went on meanwhile, a tenth of its share (rounded up) per tenth of the
        # minute, so most of its share was still ahead of it.
        first = bulk_starts[0]
        assert 1 <= len(bulk_starts) <= 6 * (1 + int((time.monotonic() - first) // 6))
        assert len([t for t in bulk_starts if t < first + 6]) <= 6
    finally:
        for task in flood:
            task.cancel()
        await asyncio.gather(*flood, return_exceptions=True)
        await budget.close()


async def test_payments_beyond_the_reserve_do_not_wait_for_bulk_works_minute() -> None:
    await _payments_during_a_bulk_flood(RealmBudget(XERO_LIMITS))


async def test_payments_beyond_the_reserve_do_not_wait_in_the_shared_ledger(
    database_url: str,
) -> None:
    engine = make_engine(database_url, pool_size=4)
    try:
        shared = SharedBudget(engine, "xero", XERO_LIMITS)
        await _payments_during_a_bulk_flood(RealmBudget(XERO_LIMITS, shared=shared))
    finally:
        await engine.dispose()
