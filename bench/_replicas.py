"""The payment storm over many companies, shared by the multi-replica test
(tests/e2e/test_replicas_storm.py) and benchmark (bench/replicas_storm.py): companies connected
and confirmed, an outreach consumer that reconnects (with its cursor) when its matcher dies,
and bookkeeper payments, full and part, recorded in the emulator at a steady rate."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import grpc

from aicollect.integration.v1 import integration_service_pb2 as ipb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.localstack import LocalStack
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from bench._stack import confirm_candidates, connect_tenant, create_company


def realm_of(n: int) -> str:
    return f"91307{n:011d}"


def tenant_of(n: int) -> str:
    return f"replica-tenant-{n}"


@dataclass(frozen=True)
class Target:
    """One placement and the payment the storm records against its invoice."""

    company: int
    placement_id: str
    invoice_id: str
    customer_id: str
    balance_cents: int
    pay_cents: int

    @property
    def full(self) -> bool:
        return self.pay_cents == self.balance_cents


async def list_placements(stack: LocalStack, tenant_id: str) -> list[mpb.Placement]:
    """Every placement of the tenant, through whichever matcher replica answers."""
    async with internal_channel(stack.matcher_addr, stack.env["AICOLLECT_INTERNAL_TOKEN"]) as ch:
        stub = mgrpc.MatchingServiceStub(ch)
        out: list[mpb.Placement] = []
        page = ""
        while True:
            reply = await stub.ListPlacements(
                mpb.ListPlacementsRequest(tenant_id=tenant_id, page_size=500, page_token=page)
            )
            out += list(reply.placements)
            page = reply.next_page_token
            if not page:
                return out


async def connect_companies(stack: LocalStack, companies: int, invoices: int) -> None:
    """``companies`` connected companies with ``invoices`` overdue invoices each, the
    creditor's confirmation given; returns once every invoice is an active placement."""

    async def one(n: int) -> None:
        await create_company(
            stack, realm_id=realm_of(n), customers=max(5, invoices // 3), invoices=invoices,
            overdue=1.0,
        )  # fmt: skip
        await connect_tenant(stack, tenant_of(n), realm_of(n))
        await confirm_candidates(stack, tenant_of(n))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            placed = await list_placements(stack, tenant_of(n))
            if sum(p.status == mpb.PLACEMENT_STATUS_ACTIVE for p in placed) == invoices:
                return
            await asyncio.sleep(0.3)
        raise AssertionError(f"{tenant_of(n)}'s placements were not all made")

    await asyncio.gather(*(one(n) for n in range(companies)))


async def targets(
    stack: LocalStack, companies: int, per_company: int, *, part_every: int = 3
) -> list[Target]:
    """``per_company`` placements of each company, interleaved across companies; every
    ``part_every``-th is paid in part (a third of its balance; 0: none), the others in full."""
    chosen: list[list[Target]] = []
    for n in range(companies):
        placed = sorted(await list_placements(stack, tenant_of(n)), key=lambda p: p.placement_id)
        row = []
        for i, p in enumerate(placed[:per_company]):
            cents = p.balance.minor_units
            part = part_every > 0 and i % part_every == 0
            pay = max(1, cents // 3) if part else cents
            row.append(Target(n, p.placement_id, p.invoice_id, p.customer_id, cents, pay))
        chosen.append(row)
    return [row[i] for i in range(per_company) for row in chosen if i < len(row)]


@dataclass
class OutreachTail:
    """A consumer of the outreach stream that reconnects, from the last cursor it
    processed, whenever its stream ends with an error (its matcher replica was killed).
    ``first``: the address of its first stream (one replica's own); later ones go to the
    target naming every matcher."""

    stack: LocalStack
    first: str | None = None
    events: list[mpb.OutreachEvent] = field(default_factory=list)
    first_stop: dict[str, float] = field(default_factory=dict)
    reconnects: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        token = self.stack.env["AICOLLECT_INTERNAL_TOKEN"]
        cursor = ""
        address = self.first or self.stack.matcher_addr
        while True:
            async with internal_channel(address, token) as channel:
                stub = mgrpc.MatchingServiceStub(channel)
                try:
                    call = stub.StreamOutreachEvents(mpb.StreamOutreachEventsRequest(cursor=cursor))
                    async for item in call:
                        event = item.event
                        cursor = event.cursor
                        self.events.append(event)
                        if event.type == mpb.OUTREACH_EVENT_TYPE_STOP:
                            self.first_stop.setdefault(event.placement_id, time.monotonic())
                        self.arrived.set()
                except grpc.aio.AioRpcError:
                    self.reconnects += 1
                    await asyncio.sleep(0.2)
            address = self.stack.matcher_addr

    def stops(self, placement_id: str) -> int:
        return sum(
            e.type == mpb.OUTREACH_EVENT_TYPE_STOP and e.placement_id == placement_id
            for e in self.events
        )

    async def wait_stops(self, placement_ids: list[str], within: float) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and any(p not in self.first_stop for p in placement_ids):
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 1.0)


async def storm(
    stack: LocalStack,
    chosen: list[Target],
    rate: float,
    during: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, float]:
    """Records each target's payment in the emulator, ``rate`` a second on a fixed
    schedule; runs ``during`` a third of the way in. Returns when each payment was sent."""
    assert stack.emulator_url is not None
    sent: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=128)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def pay(at: float, t: Target) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            amount = f"{t.pay_cents / 100:.2f}"
            sent[t.placement_id] = time.monotonic()
            async with http.post(
                f"{stack.emulator_url}/_emulator/companies/{realm_of(t.company)}/payments",
                json={
                    "customer_id": t.customer_id,
                    "amount": amount,
                    "lines": [{"invoice_id": t.invoice_id, "amount": amount}],
                },
            ) as resp:
                if resp.status not in (200, 201):
                    raise AssertionError(f"the emulator refused a payment: {await resp.text()}")

        async def crash_at(at: float) -> None:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            if during is not None:
                await during()

        start = time.monotonic() + 0.2
        await asyncio.gather(
            crash_at(start + len(chosen) / rate / 3),
            *(pay(start + i / rate, t) for i, t in enumerate(chosen)),
        )
    return sent


async def safety_net_poll(stack: LocalStack, companies: int, within: float = 60.0) -> None:
    """One change-data-capture poll of every company (``SyncNow`` incremental), waiting
    until each has finished."""
    token = stack.env["AICOLLECT_INTERNAL_TOKEN"]
    async with internal_channel(stack.integration_addr, token) as channel:
        stub = igrpc.IntegrationServiceStub(channel)

        async def polled(n: int) -> float:
            status = await stub.GetConnectionStatus(
                ipb.GetConnectionStatusRequest(tenant_id=tenant_of(n))
            )
            when = status.sync.last_cdc_poll_time
            return when.seconds + when.nanos / 1e9 if status.sync.HasField(
                "last_cdc_poll_time"
            ) else 0.0  # fmt: skip

        before = [await polled(n) for n in range(companies)]
        for n in range(companies):
            await stub.SyncNow(
                ipb.SyncNowRequest(
                    tenant_id=tenant_of(n), mode=ipb.SYNC_MODE_INCREMENTAL, actor="replica-test"
                )
            )
        deadline = time.monotonic() + within
        for n in range(companies):
            while await polled(n) <= before[n]:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{tenant_of(n)}'s poll did not finish")
                await asyncio.sleep(0.3)
