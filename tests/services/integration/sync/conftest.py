"""Fixtures for the sync tests: the emulator with a company chosen per module (webhooks off:
our app is registered without a webhook URL), the matcher in process, the integration
service with sync settings scaled for tests, a connected tenant, and helpers that read
what the matcher holds and what the emulator holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from emulators.qbo.books import Company
from emulators.qbo.config import CompanySpec
from emulators.qbo.model import Customer
from services.integration.deps import IntegrationDeps
from services.integration.models import SyncState
from services.integration.sync import state
from services.integration.sync.backfill import run_backfill
from services.integration.sync.cdc import PollResult, poll
from tests.conftest import (
    INTERNAL_TOKEN,
    REALM_ID,
    Emulator,
    integration_settings,
    running_emulator,
)
from tests.helpers.connections import confirmed_before, connect, enable

TENANT = "acme"
TODAY = date(2026, 1, 15)


@pytest.fixture
def company() -> CompanySpec:
    """The company the emulator starts with; modules override it."""
    return CompanySpec(
        realm_id=REALM_ID, name="Acme Widgets LLC", customers=20, invoices=60, today=TODAY, seed=3
    )


@pytest.fixture
def sync_env() -> dict[str, str]:
    """Extra environment for the integration settings; modules override it."""
    return {}


@pytest_asyncio.fixture
async def emulator(company: CompanySpec) -> AsyncIterator[Emulator]:
    # Webhooks off: only the CDC poll can see changes.
    async with running_emulator(company, webhook_url=None) as running:
        yield running


@pytest_asyncio.fixture
async def deps(
    engine: AsyncEngine, emulator: Emulator, matcher_addr: str, sync_env: dict[str, str]
) -> AsyncIterator[IntegrationDeps]:
    env = {
        "AICOLLECT_SYNC_TICK_SECONDS": "0.05",
        "AICOLLECT_BACKFILL_RETRY_SECONDS": "1",
        "AICOLLECT_CDC_INTERVAL_SECONDS": "3600",
        **sync_env,
    }
    matcher = internal_channel(matcher_addr, INTERNAL_TOKEN)
    async with aiohttp.ClientSession() as http:
        yield IntegrationDeps.create(
            integration_settings(emulator.url, **env), engine, http, matcher
        )
    await matcher.close(None)


@pytest_asyncio.fixture
async def channel(deps: IntegrationDeps) -> AsyncIterator[grpc.aio.Channel]:
    from services.integration.server import build_server

    server = build_server(deps, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
    await server.start()
    chan = internal_channel(f"127.0.0.1:{server.port}", INTERNAL_TOKEN)
    try:
        yield chan
    finally:
        await chan.close(None)
        await server.stop(None)


@pytest_asyncio.fixture
async def connected(channel: grpc.aio.Channel, deps: IntegrationDeps) -> grpc.aio.Channel:
    """The tenant enabled and connected to the company (a backfill is queued, not run).

    These tests are about the sync's mechanics, so the tenant is one that confirmed its
    placements before and chose ``automatic`` (``confirmed_before``): what the rules
    select is placed at once. ``test_candidates.py`` connects a new tenant instead."""
    await confirmed_before(deps.sessions, TENANT)
    await enable(channel, TENANT)
    reply = await connect(channel, TENANT, REALM_ID)
    assert reply.connected, reply
    return channel


def stub(channel: grpc.aio.Channel) -> igrpc.IntegrationServiceAsyncStub:
    return igrpc.IntegrationServiceStub(channel)


async def status(channel: grpc.aio.Channel) -> pb.GetConnectionStatusResponse:
    return await stub(channel).GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id=TENANT))


async def backfill(deps: IntegrationDeps) -> None:
    """Runs the queued backfill to completion in this task, as the scheduler would."""
    async with state.realm_lock(deps.engine, state.BACKFILL_LOCK, TENANT, REALM_ID) as held:
        assert held
        await run_backfill(deps.sync, TENANT, REALM_ID)


async def cdc_poll(deps: IntegrationDeps) -> PollResult:
    async with state.realm_lock(deps.engine, state.CDC_LOCK, TENANT, REALM_ID) as held:
        assert held
        result = await poll(deps.sync, TENANT, REALM_ID)
    assert result is not None
    return result


async def sync_row(deps: IntegrationDeps) -> SyncState:
    async with deps.sessions() as session:
        row = await state.load(session, TENANT, REALM_ID)
    assert row is not None
    return row


async def placements(deps: IntegrationDeps) -> dict[str, mpb.Placement]:
    """Every placement of the tenant, by QBO invoice id (asserting there are no two)."""
    out: dict[str, mpb.Placement] = {}
    token = ""
    while True:
        page = await deps.sync.matching.ListPlacements(
            mpb.ListPlacementsRequest(tenant_id=TENANT, page_size=1000, page_token=token)
        )
        for p in page.placements:
            assert p.invoice_id not in out, f"two placements for invoice {p.invoice_id}"
            out[p.invoice_id] = p
        token = page.next_page_token
        if not token:
            return out


def books(emulator: Emulator) -> Company:
    return emulator.state.companies[REALM_ID]


def overdue_in_books(emulator: Emulator) -> dict[str, Any]:
    """The emulator's own overdue invoices (balance above zero, due before its today)."""
    company = books(emulator)
    today = company.today().isoformat()
    return {
        i.id: i
        for i in company.invoices.values()
        if i.balance > 0 and not i.voided and i.due_date < today
    }


@dataclass
class Control:
    """The emulator's control API (the bookkeeper), over HTTP."""

    url: str
    http: aiohttp.ClientSession

    async def __call__(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        async with self.http.request(
            method, f"{self.url}/_emulator{path}", json=body if body is not None else {}
        ) as resp:
            data: dict[str, Any] = await resp.json()
            assert resp.status < 300, (resp.status, data)
            return data

    def company(self, path: str = "") -> str:
        return f"/companies/{REALM_ID}{path}"


@pytest_asyncio.fixture
async def control(emulator: Emulator) -> AsyncIterator[Control]:
    async with aiohttp.ClientSession() as http:
        yield Control(emulator.url, http)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 20.0, every: float = 0.05
) -> None:
    """Waits for a background job (scheduler tests only)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(every)


def _phones(customer: Customer) -> dict[int, str]:
    out: dict[int, str] = {}
    if customer.phone:
        out[mpb.PHONE_TYPE_PRIMARY] = customer.phone
    if customer.mobile:
        out[mpb.PHONE_TYPE_MOBILE] = customer.mobile
    return out


def assert_matches_books(
    emulator: Emulator, got: dict[str, mpb.Placement], *, invoices: int
) -> None:
    """The placements ``got`` are exactly the overdue invoices of a generated company of
    ``invoices`` invoices (30 % overdue), each with its customer as the debtor."""
    company = books(emulator)
    expected = overdue_in_books(emulator)
    assert len(expected) == round(invoices * 0.3)
    assert set(got) == set(expected)
    for invoice_id, invoice in expected.items():
        placement = got[invoice_id]
        customer = company.customers[invoice.customer_id]
        assert placement.company_id == REALM_ID
        assert placement.intake_channel == mpb.INTAKE_CHANNEL_ACCOUNTING_SYNC
        assert placement.status == mpb.PLACEMENT_STATUS_ACTIVE
        assert placement.balance.minor_units == invoice.balance
        assert placement.balance.currency_code == invoice.currency
        assert placement.original_amount.minor_units == invoice.total
        assert placement.due_date == invoice.due_date
        assert placement.doc_number == invoice.doc_number
        assert placement.customer_id == invoice.customer_id
        debtor = placement.debtor
        assert debtor.display_name == customer.display_name
        assert debtor.company_name == customer.company_name
        assert debtor.given_name == customer.given_name
        assert debtor.family_name == customer.family_name
        assert debtor.email == customer.email
        assert {p.type: p.number for p in debtor.phones} == _phones(customer)
        address = customer.address
        assert address is not None
        assert list(debtor.billing_address.lines) == [address.line1]
        assert debtor.billing_address.city == address.city
        assert debtor.billing_address.region == address.region
        assert debtor.billing_address.postal_code == address.postal_code
        assert debtor.billing_address.country == address.country


@pytest_asyncio.fixture
async def connected_new(channel: grpc.aio.Channel, deps: IntegrationDeps) -> grpc.aio.Channel:
    """A new tenant (placement preview: nothing placed before a confirmation) connected to
    the company, its first backfill run to completion: every overdue invoice staged."""
    await enable(channel, TENANT)
    reply = await connect(channel, TENANT, REALM_ID)
    assert reply.connected, reply
    await backfill(deps)
    return channel
