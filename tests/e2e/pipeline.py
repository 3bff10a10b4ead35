"""The whole pipeline in one test process: the emulator (Intuit) sends signed webhooks to
the gateway; the integration's workers (sync scheduler, inbox processor) run; outreach
events are read from the matcher's stream, as the outreach service would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from services.integration.workers import start_workers, stop_workers
from tests.conftest import CLIENT_ID, INTERNAL_TOKEN, REALM_ID, VERIFIER_TOKEN, Emulator
from tests.helpers.connections import connect
from tests.stack import Stack, confirm_first_backfill, enable_tenant, full_stack

TENANT = "acme"
PAST_DUE = "2026-06-30"


class Books:
    """What a test does in the books (the emulator's control API, as the bookkeeper acts in
    QuickBooks) and reads from the matcher (placements, the outreach events seen on its
    stream): the same for the in-process pipeline and for `aicollect run`'s processes."""

    emulator_url: str
    matching: mgrpc.MatchingServiceAsyncStub
    events: list[mpb.OutreachEvent]

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        url = f"{self.emulator_url}/_emulator/companies/{REALM_ID}/{path}"
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, url, json=body or {}) as resp,
        ):
            payload = await resp.json()
            assert resp.status in (200, 201), payload
            return payload

    async def new_invoice(self, customer_id: str, amount: str, due: str = PAST_DUE) -> str:
        invoice = await self.control(
            "POST",
            "invoices",
            {
                "customer_id": customer_id,
                "lines": [{"amount": amount, "description": "Services"}],
                "txn_date": "2026-05-31",
                "due_date": due,
            },
        )
        return str(invoice["Invoice"]["Id"] if "Invoice" in invoice else invoice["Id"])

    async def placement(self, invoice_id: str) -> mpb.Placement | None:
        reply = await self.matching.ListPlacements(
            mpb.ListPlacementsRequest(tenant_id=TENANT, invoice_id=invoice_id)
        )
        return reply.placements[0] if reply.placements else None

    async def until(
        self, check: Callable[[], Awaitable[bool]], *, within: float = 15.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    async def placed(self, invoice_id: str, *, within: float = 15.0) -> mpb.Placement:
        async def exists() -> bool:
            return await self.placement(invoice_id) is not None

        await self.until(exists, within=within, what=f"a placement for invoice {invoice_id}")
        found = await self.placement(invoice_id)
        assert found is not None
        return found

    async def status_becomes(
        self, invoice_id: str, status: int, *, within: float = 15.0
    ) -> mpb.Placement:
        async def reached() -> bool:
            current = await self.placement(invoice_id)
            return current is not None and current.status == status

        await self.until(reached, within=within, what=f"invoice {invoice_id} -> status {status}")
        found = await self.placement(invoice_id)
        assert found is not None
        return found

    def events_for(self, placement_id: str) -> list[int]:
        return [e.type for e in self.events if e.placement_id == placement_id]

    async def webhooks_drained(self, within: float = 60.0) -> None:
        """Until the emulator has delivered every queued webhook. Asked in rounds of 10 s
        (a 504 is "still pending"), so a loaded machine slows it down without failing it."""
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while True:
                async with http.post(
                    f"{self.emulator_url}/_emulator/webhooks/wait", json={"timeout": 10}
                ) as r:
                    if r.status == 200:
                        return
                    assert r.status == 504, await r.text()
                assert time.monotonic() < deadline, f"webhooks still pending after {within} s"


@dataclass
class Pipeline(Books):
    stack: Stack
    emulator: Emulator
    channel: Any
    matching: mgrpc.MatchingServiceAsyncStub
    events: list[mpb.OutreachEvent] = field(default_factory=list)
    emulator_url: str = field(init=False)

    def __post_init__(self) -> None:
        self.emulator_url = self.emulator.url


async def debtor(p: Books, amount: str = "500.00") -> tuple[str, str, mpb.Placement]:
    """A customer with one overdue invoice that has become a placement (via its webhook)."""
    customer = await p.control(
        "POST",
        "customers",
        {"display_name": f"Debtor {time.monotonic_ns()}", "email": "ap@debtor.test"},
    )
    customer_id = str(customer["Customer"]["Id"])
    invoice_id = await p.new_invoice(customer_id, amount)
    placement = await p.placed(invoice_id)
    assert placement.status == mpb.PLACEMENT_STATUS_ACTIVE
    assert placement.debtor.email == "ap@debtor.test"
    return customer_id, invoice_id, placement


async def consume_outreach(books: Books) -> None:
    """Appends every outreach event of ``TENANT`` to ``books.events``, as the outreach
    service reads them, until cancelled."""
    call = books.matching.StreamOutreachEvents(mpb.StreamOutreachEventsRequest(tenant_id=TENANT))
    async for item in call:
        books.events.append(item.event)


@asynccontextmanager
async def running_pipeline(
    engine: AsyncEngine,
    emulator: Emulator,
    *,
    webhooks: bool = True,
    confirm: bool = True,
) -> AsyncIterator[Pipeline]:
    """The pipeline with tenant ``acme`` enabled and connected; with ``confirm`` the
    creditor then confirms the first backfill's preview (future mode automatic), so
    invoices that become overdue afterwards are placed as they arrive."""
    async with full_stack(engine, emulator) as stack:
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{emulator.url}/_emulator/apps",
                json={
                    "client_id": CLIENT_ID,
                    "webhook_url": f"{stack.gateway_url}/v1/webhooks/qbo" if webhooks else None,
                    "verifier_token": VERIFIER_TOKEN,
                },
            ) as resp,
        ):
            assert resp.status in (200, 201)
        stop = asyncio.Event()
        workers = start_workers(stack.deps, stop)
        channel = internal_channel(stack.matcher_addr, INTERNAL_TOKEN)
        pipeline = Pipeline(stack, emulator, channel, mgrpc.MatchingServiceStub(channel))
        consumer = asyncio.create_task(consume_outreach(pipeline))
        try:
            await enable_tenant(stack, TENANT)
            async with internal_channel(stack.integration_addr, INTERNAL_TOKEN) as integration:
                assert (await connect(integration, TENANT)).connected
            if confirm:
                await confirm_first_backfill(stack, TENANT)
            yield pipeline
        finally:
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            await stop_workers(workers, stop, 5)
            await channel.close(None)
