"""The whole pipeline for Xero in one test process: the Xero emulator sends signed webhooks
to the gateway; the integration's workers (sync schedulers, inbox processor) run; the
matcher's placements are read as the dashboard would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from services.integration.workers import start_workers, stop_workers
from tests.conftest import INTERNAL_TOKEN, Emulator
from tests.services.integration.providers.xero.conftest import Xero, connect
from tests.stack import Stack, confirm_first_backfill, full_stack

TENANT = "acme"


@dataclass
class XeroPipeline:
    stack: Stack
    xero: Xero
    org: str
    matching: mgrpc.MatchingServiceAsyncStub

    async def books(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The bookkeeper, in the organisation's books (the emulator's control API)."""
        return await self.xero.control(method, f"/organisations/{self.org}/{path}", body, None)

    async def contact(self, name: str, email: str = "") -> str:
        found = await self.books("POST", "contacts", {"name": name, "email": email})
        return str(found["Contacts"][0]["ContactID"])

    async def invoice(self, contact: str, amount: str, due: str, **more: str) -> str:
        body = {"contact_id": contact, "amount": amount, "due_date": due, **more}
        found = await self.books("POST", "invoices", body)
        assert "Invoices" in found, found
        return str(found["Invoices"][0]["InvoiceID"])

    async def pay(self, invoice: str, amount: str | None = None) -> str:
        body = (
            {"invoice_id": invoice} if amount is None else {"invoice_id": invoice, "amount": amount}
        )
        found = await self.books("POST", "payments", body)
        assert "Payments" in found, found
        return str(found["Payments"][0]["PaymentID"])

    async def placements(self) -> dict[str, mpb.Placement]:
        reply = await self.matching.ListPlacements(
            mpb.ListPlacementsRequest(tenant_id=TENANT, page_size=500)
        )
        return {p.invoice_id: p for p in reply.placements}

    async def placement(self, invoice: str) -> mpb.Placement | None:
        return (await self.placements()).get(invoice)

    async def until(
        self, check: Callable[[], Awaitable[bool]], *, within: float = 30.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    async def status_becomes(
        self, invoice: str, status: int, *, within: float = 30.0
    ) -> mpb.Placement:
        async def reached() -> bool:
            current = await self.placement(invoice)
            return current is not None and current.status == status

        await self.until(reached, within=within, what=f"{invoice} -> {status}")
        found = await self.placement(invoice)
        assert found is not None
        return found

    async def webhooks_drained(self) -> None:
        await self.xero.control("POST", "/webhooks/wait", {"timeout": 20}, None)

    async def stats(self) -> dict[str, Any]:
        found: dict[str, Any] = await self.xero.control("GET", "/stats")
        return found


@asynccontextmanager
async def running_pipeline(
    engine: AsyncEngine,
    emulator: Emulator,
    xero: Xero,
    *,
    prepare: Callable[[XeroPipeline], Awaitable[None]] | None = None,
    timezone: str = "NEWZEALANDSTANDARDTIME",
    **settings: str,
) -> AsyncIterator[XeroPipeline]:
    """Tenant ``acme`` connected to a new organisation (after ``prepare`` filled its books),
    the workers running, and the first backfill's preview confirmed (future mode automatic)."""
    org = await xero.organisation("Acme NZ Ltd", timezone=timezone)
    env = {"AICOLLECT_SYNC_TICK_SECONDS": "0.2", **xero.settings(), **settings}
    async with full_stack(engine, emulator, xero_url=xero.base, extra=env) as stack:
        channel = internal_channel(stack.matcher_addr, INTERNAL_TOKEN)
        pipeline = XeroPipeline(stack, xero, org, mgrpc.MatchingServiceStub(channel))
        if prepare is not None:
            await prepare(pipeline)
        stop = asyncio.Event()
        workers = start_workers(stack.deps, stop)
        try:
            assert (await connect(stack, TENANT, [org]))["xero"] == ["connected"]
            await confirm_first_backfill(stack, TENANT, provider="xero", within=60)
            yield pipeline
        finally:
            await stop_workers(workers, stop, 5)
            await channel.close(None)
