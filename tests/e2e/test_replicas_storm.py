"""Two replicas of each of our processes over one PostgreSQL, proven together: two gateways
behind the round-robin balancer, two integration services and two matchers, each a real OS
process (`aicollect run --replicas 2`). Ten connected companies, a payment storm recorded
in the emulator (full and part payments), and `kill -9` of one gateway, one integration
service and one matcher in the middle of it; the survivors carry on alone. Afterwards
nothing acknowledged is lost, nothing is applied twice and every placement agrees with
the emulator's books, through one safety-net poll as well."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from aicollect.localstack import LocalStack, running_stack
from aicollect.matching.v1 import matching_service_pb2 as mpb
from bench._replicas import (
    OutreachTail,
    Target,
    connect_companies,
    list_placements,
    realm_of,
    safety_net_poll,
    storm,
    targets,
    tenant_of,
)
from tests.helpers.stack_checks import delivered_event_ids, inbox_rows, wait_for

COMPANIES = 10
INVOICES = 30  # per company: 300 placements
PAID = 15  # per company: 150 payments, a third of them part payments
RATE = 40.0  # payments a second
VICTIMS = ("gateway-1", "integration-1", "matcher-1")

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def stack() -> AsyncIterator[LocalStack]:
    async with running_stack(
        replicas=2,
        extra_env={"AICOLLECT_SHUTDOWN_GRACE_SECONDS": "2", "AICOLLECT_SYNC_TICK_SECONDS": "1"},
    ) as running:
        assert running.emulator_url is not None
        async with aiohttp.ClientSession() as http:
            # Intuit's retry schedule (10 s, 20 s, 30 s, ...) at 1/100 speed.
            await http.patch(
                f"{running.emulator_url}/_emulator/settings", json={"webhook_time_scale": 0.01}
            )
        await connect_companies(running, COMPANIES, INVOICES)
        yield running


async def _books(stack: LocalStack, t: Target) -> int:
    """The invoice's balance in the emulator's books, in cents."""
    assert stack.emulator_url is not None
    url = f"{stack.emulator_url}/_emulator/companies/{realm_of(t.company)}/invoices/{t.invoice_id}"
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        invoice = (await resp.json())["Invoice"]
    return round(float(invoice["Balance"]) * 100)


async def _placements(stack: LocalStack) -> dict[str, mpb.Placement]:
    out: dict[str, mpb.Placement] = {}
    for n in range(COMPANIES):
        out.update({p.placement_id: p for p in await list_placements(stack, tenant_of(n))})
    return out


async def _agrees_with_books(stack: LocalStack, chosen: list[Target]) -> None:
    """Every placement's status and balance are what the emulator's books say."""
    placements = await _placements(stack)
    assert len(placements) == COMPANIES * INVOICES
    paid = {t.placement_id: t for t in chosen}
    for placement_id, p in placements.items():
        t = paid.get(placement_id)
        if t is None:  # not paid: untouched
            assert p.status == mpb.PLACEMENT_STATUS_ACTIVE, placement_id
            continue
        owed = await _books(stack, t)
        assert owed == t.balance_cents - t.pay_cents  # the emulator applied it once
        assert p.balance.minor_units == owed, (placement_id, p.balance.minor_units, owed)
        if t.full:
            assert p.status == mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND, placement_id
        else:
            assert p.status == mpb.PLACEMENT_STATUS_ACTIVE, placement_id


async def test_two_replicas_of_each_survive_kill_9_mid_storm(stack: LocalStack) -> None:
    assert stack.emulator_url is not None
    assert stack.matcher_addr.startswith("ipv4:")  # the clients balance over both
    # The consumer's first stream is on the matcher that will be killed.
    tail = OutreachTail(stack, first=stack.children["matcher-1"].env["AICOLLECT_MATCHER_ADDR"])
    consumer = asyncio.create_task(tail.run())
    try:
        chosen = await targets(stack, COMPANIES, PAID)
        assert len(chosen) == COMPANIES * PAID
        full = [t.placement_id for t in chosen if t.full]
        part = [t for t in chosen if not t.full]
        assert full
        assert part

        async def kill_one_of_each() -> None:
            await asyncio.gather(*(stack.kill(name) for name in VICTIMS))

        await storm(stack, chosen, RATE, kill_one_of_each)
        for name in VICTIMS:
            proc = stack.children[name].proc
            assert proc is not None
            assert proc.returncode == -signal.SIGKILL

        await tail.wait_stops(full, within=90)
        missing = [p for p in full if p not in tail.first_stop]
        assert not missing, f"{len(missing)} paid placements were never stopped"

        async def part_payments_applied() -> bool:
            placements = await _placements(stack)
            return all(
                placements[t.placement_id].balance.minor_units == t.balance_cents - t.pay_cents
                for t in part
            )

        await wait_for(part_payments_applied, 60, "the part payments")
        await _agrees_with_books(stack, chosen)

        async def inbox_settled() -> bool:
            rows = await inbox_rows(stack)
            return bool(rows) and all(r["status"] == "done" for r in rows)

        await wait_for(inbox_settled, 60, "the inbox to settle")

        # One safety-net poll of every company, by the surviving integration service:
        # it finds the same payments and applies none of them again.
        await safety_net_poll(stack, COMPANIES)
        await asyncio.sleep(1.0)
        await _agrees_with_books(stack, chosen)

        # Every webhook a gateway acknowledged was stored, once, and processed.
        rows = await inbox_rows(stack)
        assert all(r["status"] == "done" for r in rows)
        assert len({r["event_id"] for r in rows}) == len(rows)
        acked = await delivered_event_ids(stack)
        assert acked, "the emulator saw nothing acknowledged?"
        missing_events = acked - {r["event_id"] for r in rows}
        assert not missing_events, f"acknowledged but not stored: {sorted(missing_events)[:5]}"

        # The outreach stream, read across the killed matcher: each event once, each paid
        # placement stopped exactly once, nothing stopped that was paid only in part.
        assert tail.reconnects >= 1  # it did lose its matcher and carry on
        ids = Counter(e.event_id for e in tail.events)
        assert [i for i, n in ids.items() if n > 1] == []
        for placement_id in full:
            assert tail.stops(placement_id) == 1, placement_id
        for t in part:
            assert tail.stops(t.placement_id) == 0, t.placement_id

        # Intuit never throttled us: the replicas kept to each company's budget together.
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{stack.emulator_url}/_emulator/stats") as resp,
        ):
            stats = await resp.json()
        throttled = stats.get("throttled") or {}
        assert sum(throttled.values()) == 0, throttled
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
