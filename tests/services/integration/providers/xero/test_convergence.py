"""Convergence through the Xero path: whatever happens to Xero's webhooks (dropped,
duplicated, reordered), one poll later every placement is exactly where perfect delivery
leaves it.

Each example plays one random sequence of bookkeeper actions twice, on two identical
organisations: once with perfect webhook delivery, once with webhooks dropped, duplicated
and reordered at random followed by one poll. The placements must then match invoice for
invoice (status and balance). ``AICOLLECT_XERO_CONVERGENCE_EXAMPLES`` sets the number
(default 8: real processes, a few seconds each).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import integration_service_pb2 as ipb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from services.integration.workers import start_workers, stop_workers
from tests.conftest import INTERNAL_TOKEN, Emulator
from tests.services.integration.providers.xero.conftest import Xero, connect
from tests.stack import Stack, confirm_first_backfill, full_stack

# What is matched is the subject here, not Xero's pacing: 600 requests a minute, not 60,
# so a safety-net poll is not spread over several seconds (the pacing has its own tests).
pytestmark = pytest.mark.xero_minute_limit(600)

EXAMPLES = int(os.environ.get("AICOLLECT_XERO_CONVERGENCE_EXAMPLES", "8"))
DERANDOMIZE = "AICOLLECT_XERO_CONVERGENCE_EXAMPLES" not in os.environ
INVOICES = (("A", "400.00"), ("A", "250.00"), ("B", "900.00"))
KINDS = ["pay", "pay_part", "delete_pay", "credit_note", "overpayment", "void_invoice"]


@dataclass(frozen=True)
class Action:
    kind: str
    invoice: int  # index into the organisation's invoices
    payment: int  # index into the payments made so far (for delete_pay)


actions = st.lists(
    st.builds(
        Action,
        kind=st.sampled_from(KINDS),
        invoice=st.integers(0, len(INVOICES) - 1),
        payment=st.integers(0, 5),
    ),
    min_size=2,
    max_size=6,
)


@dataclass
class Org:
    tenant_id: str  # Xero's organisation
    tenant: str  # ours
    contacts: dict[str, str]
    invoices: list[str]
    payments: list[str] = field(default_factory=list)


@dataclass
class Pipeline:
    stack: Stack
    xero: Xero
    matching: mgrpc.MatchingServiceAsyncStub

    async def books(self, org: Org, method: str, path: str, body: Any = None) -> Any:
        return await self.xero.control(method, f"/organisations/{org.tenant_id}/{path}", body, None)

    async def until(self, check: Any, *, within: float = 30.0, what: str = "") -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if await check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator, xero: Xero) -> AsyncIterator[Pipeline]:
    env = {"AICOLLECT_SYNC_TICK_SECONDS": "0.2", **xero.settings()}
    async with full_stack(engine, emulator, xero_url=xero.base, extra=env) as stack:
        channel = internal_channel(stack.matcher_addr, INTERNAL_TOKEN)
        stop = asyncio.Event()
        workers = start_workers(stack.deps, stop)
        try:
            yield Pipeline(stack, xero, mgrpc.MatchingServiceStub(channel))
        finally:
            await stop_workers(workers, stop, 5)
            await channel.close(None)


async def _org(p: Pipeline, tag: str, n: int) -> Org:
    tenant_id = await p.xero.organisation(f"Org {tag} {n}")
    org = Org(tenant_id, f"tenant-{tag}-{n}", {}, [])
    for name in sorted({c for c, _ in INVOICES}):
        made = await p.books(org, "POST", "contacts", {"name": f"Debtor {name}"})
        org.contacts[name] = made["Contacts"][0]["ContactID"]
    for contact, amount in INVOICES:
        made = await p.books(
            org,
            "POST",
            "invoices",
            {
                "contact_id": org.contacts[contact],
                "amount": amount,
                "date": "2026-05-01",
                "due_date": "2026-06-01",
            },
        )
        org.invoices.append(made["Invoices"][0]["InvoiceID"])
    landed = await connect(p.stack, org.tenant, [tenant_id], user=f"user-{tag}-{n}")
    assert landed["xero"] == ["connected"], landed
    await confirm_first_backfill(p.stack, org.tenant, provider="xero", within=60)

    async def placed() -> bool:
        return len(await _state(p, org)) == len(INVOICES)

    await p.until(placed, what="the backfill's placements")
    return org


async def _play(p: Pipeline, org: Org, script: list[Action]) -> None:
    for action in script:
        invoice_id = org.invoices[action.invoice]
        contact = org.contacts[INVOICES[action.invoice][0]]
        invoice = (await p.books(org, "GET", f"invoices/{invoice_id}"))["Invoices"][0]
        due = float(invoice["AmountDue"])
        if action.kind in ("pay", "pay_part") and due > 0:
            amount = f"{due if action.kind == 'pay' else round(due / 2, 2):.2f}"
            made = await p.books(
                org, "POST", "payments", {"invoice_id": invoice_id, "amount": amount}
            )
            if "Payments" in made:
                org.payments.append(made["Payments"][0]["PaymentID"])
        elif action.kind in ("credit_note", "overpayment") and due > 0:
            kind = "credit-notes" if action.kind == "credit_note" else "overpayments"
            key = "CreditNotes" if action.kind == "credit_note" else "Overpayments"
            made = await p.books(org, "POST", kind, {"contact_id": contact, "amount": f"{due:.2f}"})
            if key in made:
                credit_id = made[key][0][f"{key[:-1]}ID"]
                await p.books(
                    org, "POST", f"{kind}/{credit_id}/allocations", {"invoice_id": invoice_id}
                )
        elif action.kind == "delete_pay" and org.payments:
            payment = org.payments[action.payment % len(org.payments)]
            await p.books(org, "DELETE", f"payments/{payment}")
        elif action.kind == "void_invoice":
            await p.books(org, "POST", f"invoices/{invoice_id}/void")  # refused if paid


async def _status(p: Pipeline, org: Org) -> ipb.GetConnectionStatusResponse:
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        return await igrpc.IntegrationServiceStub(channel).GetConnectionStatus(
            ipb.GetConnectionStatusRequest(tenant_id=org.tenant, provider=ipb.PROVIDER_XERO)
        )


async def _settled(p: Pipeline, org: Org) -> None:
    await p.xero.control("POST", "/webhooks/wait", {"timeout": 20}, None)

    async def idle() -> bool:
        status = await _status(p, org)
        return status.sync.inbox_backlog_count == 0 and status.sync.dead_letter_count == 0

    await p.until(idle, what="an empty inbox")


async def _poll(p: Pipeline, org: Org) -> None:
    before = (await _status(p, org)).sync.last_cdc_poll_time.ToNanoseconds()
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        reply = await igrpc.IntegrationServiceStub(channel).SyncNow(
            ipb.SyncNowRequest(
                tenant_id=org.tenant,
                mode=ipb.SYNC_MODE_INCREMENTAL,
                actor="t",
                provider=ipb.PROVIDER_XERO,
            )
        )
    assert reply.started

    async def polled() -> bool:
        return (await _status(p, org)).sync.last_cdc_poll_time.ToNanoseconds() > before

    await p.until(polled, what="a poll")


async def _state(p: Pipeline, org: Org) -> dict[int, tuple[int, int]]:
    reply = await p.matching.ListPlacements(
        mpb.ListPlacementsRequest(tenant_id=org.tenant, page_size=100)
    )
    by_invoice = {pl.invoice_id: (pl.status, pl.balance.minor_units) for pl in reply.placements}
    return {i: by_invoice[inv] for i, inv in enumerate(org.invoices) if inv in by_invoice}


RUNS = [0]


@settings(
    max_examples=EXAMPLES,
    derandomize=DERANDOMIZE,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(script=actions, seed=st.integers(0, 2**16))
async def test_lossy_webhooks_plus_one_poll_converge(
    pipeline: Pipeline, script: list[Action], seed: int
) -> None:
    p = pipeline
    RUNS[0] += 1
    await p.xero.control("DELETE", "/faults", None, None)
    perfect = await _org(p, "perfect", RUNS[0])
    lossy = await _org(p, "lossy", RUNS[0])

    await _play(p, perfect, script)
    await _settled(p, perfect)
    expected = await _state(p, perfect)

    await p.xero.control(
        "POST",
        "/faults",
        {
            "seed": seed,
            "webhook_drop_rate": 0.4,
            "webhook_duplicate_rate": 0.3,
            "webhook_reorder_rate": 0.5,
        },
        None,
    )
    await _play(p, lossy, script)
    await _settled(p, lossy)
    await p.xero.control("DELETE", "/faults", None, None)
    await _poll(p, lossy)
    await _settled(p, lossy)
    actual = await _state(p, lossy)
    assert actual == expected, (script, seed, expected, actual)
