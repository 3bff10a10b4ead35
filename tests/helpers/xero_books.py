"""A Xero organisation filled for a test and backfilled through the whole stack (the Xero
emulator, a real PostgreSQL, the matcher, the integration service with its workers and the
gateway): the contacts and invoices of ``Books``, the backfill run by the scheduler after
the tenant connects, the calls the emulator counted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from emulators.xero.books import Contact, Invoice, Line, Organisation
from services.integration.models import PlacementIntake
from services.integration.workers import start_workers, stop_workers
from tests.conftest import INTERNAL_TOKEN, Emulator
from tests.services.integration.providers.xero.conftest import Xero, connect, status
from tests.stack import Stack, full_stack

TENANT = "acme"


def contact_id_of(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def invoice_id_of(n: int) -> str:
    return f"10000000-0000-4000-8000-{n:012d}"


@dataclass
class Books:
    org: Organisation
    tenant_id: str

    def debtor(self, n: int, *, with_invoice: bool = True, contact_id: str = "") -> Contact:
        """Contact ``n`` (its email names it), with one overdue invoice of 100.00."""
        contact = Contact(
            contact_id or contact_id_of(n),
            f"Debtor {n}",
            self.org.stamp(),
            email=f"debtor{n}@debtor.test",
        )
        self.org.load_contact(contact)
        if with_invoice:
            self.invoice(contact, invoice_id_of(n))
        return contact

    def invoice(self, contact: Contact, invoice_id: str) -> None:
        due = self.org.today() - timedelta(days=30)
        invoice = Invoice(
            invoice_id,
            f"INV-{invoice_id[-6:]}",
            contact.id,
            [Line("Services", 10_000)],
            due - timedelta(days=14),
            due,
            self.org.stamp(),
            self.org.base_currency,
        )
        self.org.load_invoice(invoice)


async def all_placements(stack: Stack) -> dict[str, mpb.Placement]:
    channel = internal_channel(stack.matcher_addr, INTERNAL_TOKEN)
    try:
        matching = mgrpc.MatchingServiceStub(channel)
        found: dict[str, mpb.Placement] = {}
        token = ""
        while True:
            reply = await matching.ListPlacements(
                mpb.ListPlacementsRequest(tenant_id=TENANT, page_size=1000, page_token=token)
            )
            found.update({p.invoice_id: p for p in reply.placements})
            token = reply.next_page_token
            if not token:
                return found
    finally:
        await channel.close(None)


@asynccontextmanager
async def backfilled(
    engine: AsyncEngine,
    emulator: Emulator,
    xero: Xero,
    fill: Callable[[Books], None],
    *,
    during: Callable[[Books], AsyncIterator[None]] | None = None,
    mode: str = "automatic",
    extra: dict[str, str] | None = None,
) -> AsyncIterator[tuple[Books, dict[str, int], dict[str, mpb.Placement], Stack]]:
    """An organisation filled by ``fill``, connected by tenant ``acme`` in intake mode
    ``mode``; yields once its first backfill is done: the contact reads it made (by kind),
    the placements and the running stack. ``during`` runs beside the backfill."""
    tenant_id = await xero.organisation("Acme NZ Ltd")
    books = Books(xero.state.organisations[tenant_id], tenant_id)
    fill(books)
    async with full_stack(
        engine,
        emulator,
        xero_url=xero.base,
        extra={"AICOLLECT_SYNC_TICK_SECONDS": "0.2", **(extra or {})},
    ) as stack:
        if mode != "preview":  # a new tenant's mode: no row
            async with stack.deps.sessions.begin() as session:
                session.add(
                    PlacementIntake(tenant_id=TENANT, provider="xero", mode=mode, updated_by="t")
                )
        stop = asyncio.Event()
        workers = start_workers(stack.deps, stop)
        side = asyncio.create_task(drain(during(books))) if during is not None else None
        try:
            assert (await connect(stack, TENANT, [tenant_id]))["xero"] == ["connected"]
            deadline = time.monotonic() + 120
            while (await status(stack, TENANT)).get("backfill", {}).get(
                "phase"
            ) != "BACKFILL_PHASE_COMPLETED":
                assert time.monotonic() < deadline, "the backfill did not finish"
                await asyncio.sleep(0.1)
            yield books, contact_reads(xero, tenant_id), await all_placements(stack), stack
        finally:
            if side is not None:
                side.cancel()
            await stop_workers(workers, stop, 5)


def contact_reads(xero: Xero, tenant_id: str) -> dict[str, int]:
    """The contact reads made so far in the organisation, by kind (``Contacts?page``...)."""
    return {
        kind: n
        for (tenant, kind), n in xero.state.api_paths.items()
        if tenant == tenant_id and kind.startswith("Contacts")
    }


async def drain(steps: AsyncIterator[None]) -> None:
    async for _ in steps:
        pass
