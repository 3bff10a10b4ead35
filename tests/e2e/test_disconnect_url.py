"""Intuit's Disconnect URL (``GET /v1/integrations/qbo/disconnected``) through the real
gateway, integration service and emulator: a disconnect made on Intuit's side is
confirmed and recorded at once; a forged landing changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from services.integration.tokens import ReauthorizationRequired
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator, qbo_api
from tests.e2e.pipeline import TENANT, Pipeline, debtor, running_pipeline
from tests.helpers.connections import expire_access_token

STOP = mpb.OUTREACH_EVENT_TYPE_STOP

LANDING = "/v1/integrations/qbo/disconnected"


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    async with running_pipeline(engine, emulator) as p:
        yield p


async def _land(p: Pipeline, query: str) -> str:
    """The browser lands on the Disconnect URL; returns where the gateway sends it."""
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{p.stack.gateway_url}{LANDING}?{query}", allow_redirects=False) as resp,
    ):
        assert resp.status == 302, await resp.text()
        assert resp.headers["Cache-Control"] == "no-store"
        return resp.headers["Location"]


async def _status(p: Pipeline) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{p.stack.gateway_url}/v1/integrations/qbo",
            headers={"Authorization": p.stack.bearer(TENANT)},
        ) as resp,
    ):
        assert resp.status == 200
        body: dict[str, Any] = await resp.json()
        return body


async def _audit(p: Pipeline, action_prefix: str) -> list[apb.AuditEvent]:
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        reply = await agrpc.AdminServiceStub(channel).ListAuditEvents(
            apb.ListAuditEventsRequest(tenant_id=TENANT, action_prefix=action_prefix)
        )
    return list(reply.events)


async def _disconnect_at_intuit(p: Pipeline) -> None:
    await p.control("POST", "disconnect", {})


async def test_a_disconnect_on_intuits_side_is_recorded_when_the_browser_lands(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    _, invoice_id, placement = await debtor(p)
    await _disconnect_at_intuit(p)

    landed = await _land(p, f"realmId={REALM_ID}")
    assert landed == f"{p.stack.dashboard_url}?qbo=disconnected"
    status = await _status(p)
    assert status["state"] == "CONNECTION_STATE_DISCONNECTED"
    assert status["disconnect_origin"] == "DISCONNECT_ORIGIN_INTUIT"
    assert "disconnect_time" in status
    # Placements and outreach stay, as after a disconnect from the dashboard.
    current = await p.placement(invoice_id)
    assert current is not None
    assert current.status == mpb.PLACEMENT_STATUS_ACTIVE
    assert STOP not in p.events_for(placement.placement_id)
    # Audited: who (Intuit's Disconnect URL), which company, from which state.
    [event] = await _audit(p, "connection.disconnected")
    assert event.actor == "Intuit (Disconnect URL)"
    assert event.details["realm_id"] == REALM_ID
    assert event.details["origin"] == "intuit"
    # Landing again (a reload) says the same and records nothing more.
    assert await _land(p, f"realmId={REALM_ID}") == f"{p.stack.dashboard_url}?qbo=disconnected"
    assert len(await _audit(p, "connection.disconnected")) == 1


async def test_a_disconnect_already_detected_on_a_call_becomes_disconnected(
    pipeline: Pipeline,
) -> None:
    p = pipeline
    await _disconnect_at_intuit(p)
    # The next call detects the revoked grant, as before the Disconnect URL existed.
    await p.stack.deps.tokens.mark_needs_reauthorization(TENANT, "test: invalid_grant", None)
    assert (await _status(p))["state"] == "CONNECTION_STATE_NEEDS_REAUTHORIZATION"
    assert await _land(p, f"realmId={REALM_ID}") == f"{p.stack.dashboard_url}?qbo=disconnected"
    status = await _status(p)
    assert status["state"] == "CONNECTION_STATE_DISCONNECTED"
    assert status["disconnect_origin"] == "DISCONNECT_ORIGIN_INTUIT"


async def test_a_forged_landing_for_a_valid_connection_changes_nothing(
    pipeline: Pipeline, emulator: Emulator
) -> None:
    p = pipeline
    before = await _status(p)
    unconfirmed = f"{p.stack.dashboard_url}?qbo=disconnect_unconfirmed"
    # Never an open redirect: whatever the query says, the browser goes to the dashboard.
    forged = f"realmId={REALM_ID}&redirect_uri=https://evil.example/&next=//evil.example"
    assert await _land(p, forged) == unconfirmed
    after = await _status(p)
    assert after["state"] == "CONNECTION_STATE_CONNECTED"
    assert after["realm_id"] == before["realm_id"]
    # The grant still works: Intuit is called with it as before.
    info = await p.stack.deps.caller.call(TENANT, qbo_api(p.stack.deps).company_info)
    assert info["CompanyName"] == "Acme Widgets LLC"
    [refused] = await _audit(p, "connection.disconnect_report_unconfirmed")
    assert refused.details["outcome"] == "not_confirmed"
    # Repeating the forged link within a minute asks Intuit nothing more, records nothing.
    refreshes = emulator.state.oauth.token_calls["refresh_token"]
    assert await _land(p, forged) == unconfirmed
    assert emulator.state.oauth.token_calls["refresh_token"] == refreshes
    assert len(await _audit(p, "connection.disconnect_report_unconfirmed")) == 1
    # Unknown, missing or malformed companies change nothing either.
    for query in ("realmId=424242", "", "realmId=9130'--", "realmId=" + "9" * 100):
        assert await _land(p, query) == unconfirmed
    assert (await _status(p))["state"] == "CONNECTION_STATE_CONNECTED"
    assert await _audit(p, "connection.disconnected") == []


async def test_when_intuit_cannot_confirm_nothing_changes_and_the_next_call_detects_it(
    pipeline: Pipeline, emulator: Emulator
) -> None:
    p = pipeline
    await _disconnect_at_intuit(p)
    faults = f"{emulator.url}/_emulator/faults"
    async with aiohttp.ClientSession() as http:
        async with http.put(
            faults, json={"scope": ["token"], "error_rate": 1.0, "error_status": 503}
        ) as resp:
            assert resp.status == 200
        landed = await _land(p, f"realmId={REALM_ID}")
        assert landed == f"{p.stack.dashboard_url}?qbo=disconnect_unconfirmed"
        assert (await _status(p))["state"] == "CONNECTION_STATE_CONNECTED"
        [refused] = await _audit(p, "connection.disconnect_report_unconfirmed")
        assert refused.details["outcome"] == "unconfirmed"
        async with http.delete(faults) as resp:
            assert resp.status == 200
    # Intuit is back: the next call detects the revoked grant, as it always has...
    await expire_access_token(p.stack.deps.sessions)
    with pytest.raises(ReauthorizationRequired):
        await p.stack.deps.caller.call(TENANT, qbo_api(p.stack.deps).company_info)
    # ...and the browser landing again now completes the disconnect.
    assert await _land(p, f"realmId={REALM_ID}") == f"{p.stack.dashboard_url}?qbo=disconnected"
    assert (await _status(p))["state"] == "CONNECTION_STATE_DISCONNECTED"
