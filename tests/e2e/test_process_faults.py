"""Faults on the real multi-process system (`aicollect run`'s processes): `kill -9` of the
gateway, the integration service or the matcher in the middle of a storm of bookkeeper
payments, PostgreSQL restarted mid-storm, and Intuit error / 429 storms. Afterwards every
acknowledged webhook event is processed exactly once and every placement is right."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
import pytest_asyncio

from aicollect.localstack import LocalStack, running_stack
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from bench._stack import confirm_candidates, connect_tenant, create_company
from tests.helpers.stack_checks import (
    delivered_event_ids,
    failed_attempts,
    inbox_rows,
    wait_for,
)

REALM = "9130500000000001"
TENANT = "fault-tenant"
INVOICES = 120
PAID = 60

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def stack() -> AsyncIterator[LocalStack]:
    async with running_stack(
        extra_env={"AICOLLECT_SHUTDOWN_GRACE_SECONDS": "2", "AICOLLECT_SYNC_TICK_SECONDS": "1"}
    ) as running:
        assert running.emulator_url is not None
        async with aiohttp.ClientSession() as http:
            # Intuit's retry schedule (10 s, 20 s, 30 s, ...) at 1/100 speed.
            await http.patch(
                f"{running.emulator_url}/_emulator/settings", json={"webhook_time_scale": 0.01}
            )
        await create_company(running, realm_id=REALM, customers=30, invoices=INVOICES, overdue=1.0)
        await connect_tenant(running, TENANT, REALM)
        await confirm_candidates(running, TENANT)  # the creditor confirms the preview
        await wait_for(lambda: _counts(running, active=INVOICES), 120, "the backfill")
        yield running


async def _placements(stack: LocalStack) -> list[mpb.Placement]:
    addr, token = stack.env["AICOLLECT_MATCHER_ADDR"], stack.env["AICOLLECT_INTERNAL_TOKEN"]
    async with internal_channel(addr, token) as channel:
        stub = mgrpc.MatchingServiceStub(channel)
        out: list[mpb.Placement] = []
        page = ""
        while True:
            reply = await stub.ListPlacements(
                mpb.ListPlacementsRequest(tenant_id=TENANT, page_size=500, page_token=page)
            )
            out += list(reply.placements)
            page = reply.next_page_token
            if not page:
                return out


async def _counts(stack: LocalStack, *, active: int, resolved: int = 0) -> bool:
    try:
        placements = await _placements(stack)
    except Exception:  # the matcher may be restarting
        return False
    statuses = [p.status for p in placements]
    return (
        statuses.count(mpb.PLACEMENT_STATUS_ACTIVE) == active
        and statuses.count(mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND) == resolved
    )


async def _storm(
    stack: LocalStack, during: Callable[[], Awaitable[None]] | None = None
) -> list[str]:
    """Settles PAID invoices with bookkeeper payments at ~30/s; runs ``during`` midway."""
    placements = await _placements(stack)
    targets = sorted(placements, key=lambda p: p.invoice_id)[:PAID]
    assert stack.emulator_url is not None
    url = f"{stack.emulator_url}/_emulator/companies/{REALM}/payments"
    async with aiohttp.ClientSession() as http:

        async def pay(p: mpb.Placement) -> None:
            amount = f"{p.balance.minor_units / 100:.2f}"
            async with http.post(
                url,
                json={
                    "customer_id": p.customer_id,
                    "amount": amount,
                    "lines": [{"invoice_id": p.invoice_id, "amount": amount}],
                },
            ) as resp:
                assert resp.status in (200, 201), await resp.text()

        for i, placement in enumerate(targets):
            if i == PAID // 3 and during is not None:
                await during()
            await pay(placement)
            await asyncio.sleep(1 / 30)
    return [p.invoice_id for p in targets]


async def _converged(stack: LocalStack, paid: list[str]) -> None:
    assert stack.emulator_url is not None
    await wait_for(
        lambda: _counts(stack, active=INVOICES - PAID, resolved=PAID), 120, "every payment"
    )
    placements = {p.invoice_id: p for p in await _placements(stack)}
    for invoice_id in paid:
        assert placements[invoice_id].status == mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND
        assert placements[invoice_id].balance.minor_units == 0
        assert placements[invoice_id].resolution_reason == "paid out-of-band"

    async def inbox_settled() -> bool:
        rows = await inbox_rows(stack)
        return bool(rows) and all(r["status"] == "done" for r in rows)

    await wait_for(inbox_settled, 60, "the inbox to settle")
    rows = await inbox_rows(stack)
    assert len({r["event_id"] for r in rows}) == len(rows)  # each event stored once
    acked = await delivered_event_ids(stack)
    assert acked, "the emulator acknowledged nothing?"
    stored = {r["event_id"] for r in rows}
    assert acked <= stored, f"acknowledged but not stored: {sorted(acked - stored)[:5]}"


@pytest.mark.parametrize("victim", ["gateway", "integration", "matcher"])
async def test_kill_9_mid_storm_loses_nothing(stack: LocalStack, victim: str) -> None:
    async def crash_and_restart() -> None:
        await stack.kill(victim)
        await asyncio.sleep(1.0)
        await stack.restart(victim)

    paid = await _storm(stack, crash_and_restart)
    await _converged(stack, paid)
    if victim in ("gateway", "integration"):
        # Intuit really was refused while the process was down, and retried.
        assert await failed_attempts(stack) > 0


def _signed(stack: LocalStack) -> tuple[bytes, str]:
    body = json.dumps(
        [
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "type": "qbo.payment.created.v1",
                "time": "2026-11-25T10:00:00Z",
                "intuitentityid": "999999",
                "intuitaccountid": REALM,
            }
        ]
    ).encode()
    token = stack.env["QBO_WEBHOOK_VERIFIER_TOKEN"].encode()
    return body, base64.b64encode(hmac.new(token, body, hashlib.sha256).digest()).decode()


async def test_postgres_restart_mid_storm_answers_503_and_loses_nothing(
    stack: LocalStack,
) -> None:
    assert stack.postgres is not None
    seen_503: list[int] = []

    async def restart_postgres() -> None:
        assert stack.postgres is not None
        await asyncio.to_thread(stack.postgres.stop)
        body, signature = _signed(stack)
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{stack.gateway_url}/v1/webhooks/qbo",
                data=body,
                headers={"intuit-signature": signature, "Content-Type": "application/json"},
            ) as resp,
        ):
            seen_503.append(resp.status)
        await asyncio.sleep(1.0)
        await asyncio.to_thread(stack.postgres.start)

    paid = await _storm(stack, restart_postgres)
    assert seen_503 == [503]  # while the database was down, Intuit was told to retry
    await _converged(stack, paid)


async def test_intuit_error_and_throttle_storms_slow_the_sync_but_lose_nothing(
    stack: LocalStack,
) -> None:
    assert stack.emulator_url is not None

    async def storm_at_intuit() -> None:
        async with aiohttp.ClientSession() as http:
            await http.put(
                f"{stack.emulator_url}/_emulator/faults",
                json={
                    "error_rate": 0.3,
                    "error_status": 503,
                    "throttle_rate": 0.3,
                    "retry_after": 1,
                },
            )

    paid = await _storm(stack, storm_at_intuit)
    await asyncio.sleep(3)
    async with aiohttp.ClientSession() as http:
        await http.delete(f"{stack.emulator_url}/_emulator/faults")
    await _converged(stack, paid)
