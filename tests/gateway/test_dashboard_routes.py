"""The dashboard screens' JSON routes (gateway/screens.py) through the real pipeline: the
emulator with signed webhooks, the gateway, the integration service with its workers and
the matcher. Every answer is Proto3 JSON with zero values present; the tenant is the JWT's
only; bad query parameters are refused with a clear 400; reading a screen changes nothing.
The reference page is served in local mode only."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import jwt
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from aicollect.settings import Settings
from emulators.qbo.config import CompanySpec
from gateway.app import create_app
from gateway.keys import Backends
from tests.conftest import REALM_ID, Emulator, running_emulator
from tests.e2e.pipeline import TENANT, Pipeline, running_pipeline
from tests.stack import JWT_SECRET, Stack, full_stack

OTHER = "globex"
OOB = "PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND"


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[Emulator]:
    company = CompanySpec(
        realm_id=REALM_ID, name="Acme Widgets LLC", customers=4, invoices=16, overdue_fraction=0.5
    )
    async with running_emulator(company) as running:
        yield running


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Stack]:
    async with full_stack(engine, emulator) as s:
        yield s


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    async with running_pipeline(engine, emulator, confirm=True) as p:
        yield p


async def _get(
    http: aiohttp.ClientSession, stack: Stack, path: str, tenant: str = TENANT, **params: Any
) -> tuple[int, Any]:
    headers = {"Authorization": stack.bearer(tenant)}
    async with http.get(stack.gateway_url + path, headers=headers, params=params) as resp:
        return resp.status, await resp.json()


SCREENS = (
    "/v1/integrations/qbo",
    "/v1/integrations/qbo/sync-progress",
    "/v1/integrations/qbo/disconnect-preview",
    "/v1/placements",
    "/v1/placements/any-id/timeline",
)


async def test_every_screen_requires_a_valid_jwt(stack: Stack) -> None:
    forged = jwt.encode(
        {"sub": "x", "tenant_id": TENANT, "exp": int(time.time()) + 60},
        "a-different-secret-of-the-same-length-01",
        algorithm="HS256",
    )
    async with aiohttp.ClientSession() as http:
        for path in SCREENS:
            for headers in (
                {},
                {"Authorization": "Bearer not.a.jwt"},
                {"Authorization": f"Bearer {forged}"},
                {"Authorization": stack.bearer(TENANT, ttl=-120)},
            ):
                async with http.get(stack.gateway_url + path, headers=headers) as resp:
                    assert resp.status == 401, (path, headers)
                    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
                    assert (await resp.json())["error"]["code"] == "UNAUTHENTICATED"


async def test_bad_query_parameters_are_a_clear_400(stack: Stack) -> None:
    cases: list[tuple[str, dict[str, str], str]] = [
        ("/v1/placements", {"status": "paid"}, "status must be one of active, "),
        ("/v1/placements", {"reason": " "}, "reason must be a resolution reason"),
        ("/v1/placements", {"reason": "x" * 201}, "reason must be a resolution reason"),
        ("/v1/placements", {"page_size": "0"}, "page_size must be a whole number from 1 to 50"),
        ("/v1/placements", {"page_size": "51"}, "page_size must be a whole number from 1 to 50"),
        ("/v1/placements", {"page_size": "²"}, "page_size must be a whole number from 1 to 50"),
        ("/v1/placements", {"page_token": "t" * 3000}, "page_token is too long"),
        ("/v1/placements", {"tenant_id": OTHER}, "unknown query parameter 'tenant_id'"),
        ("/v1/integrations/qbo/sync-progress", {"tenant_id": OTHER}, "unknown query parameter"),
        ("/v1/integrations/qbo/disconnect-preview", {"realm_id": "1"}, "unknown query parameter"),
        ("/v1/placements/p-1/timeline", {"status": "active"}, "unknown query parameter"),
    ]
    async with aiohttp.ClientSession() as http:
        for path, params, message in cases:
            status, body = await _get(http, stack, path, **params)
            assert status == 400, (path, params, body)
            assert body["error"]["reason"] == "FIELD_INVALID"
            assert message in body["error"]["message"], (params, body)
        # A page token from elsewhere is the matcher's INVALID_ARGUMENT, answered as 400.
        status, body = await _get(http, stack, "/v1/placements", page_token="bm90LWEtdG9rZW4")
        assert status == 400
        assert body["error"]["reason"] == "FIELD_INVALID"
        status, body = await _get(http, stack, "/v1/integrations/sage/sync-progress")
        assert (status, body["error"]["reason"]) == (404, "UNKNOWN_PROVIDER")
        # Nothing was changed by any of it.
        status, body = await _get(http, stack, "/v1/integrations/qbo")
        assert body["state"] == "CONNECTION_STATE_NOT_CONNECTED"


async def test_screens_before_connecting_carry_every_field(stack: Stack) -> None:
    async with aiohttp.ClientSession() as http:
        status, panel = await _get(http, stack, "/v1/integrations/qbo")
        assert status == 200
        # Zero values are present: a disabled tenant reads enabled false, not a missing key.
        assert panel["enabled"] is False
        assert panel["kill_switch"] is False
        assert panel["company_name"] == ""
        assert panel["backfill"]["invoices_seen"] == "0"
        assert panel["sync"]["inbox_backlog_count"] == "0"
        status, progress = await _get(http, stack, "/v1/integrations/qbo/sync-progress")
        assert status == 200
        assert progress["state"] == "CONNECTION_STATE_NOT_CONNECTED"
        assert progress["candidate_totals"] == []
        assert progress["backfill"]["candidates_staged"] == "0"
        assert progress["company_date"] == ""
        status, preview = await _get(http, stack, "/v1/integrations/qbo/disconnect-preview")
        assert status == 200
        assert preview["can_disconnect"] is False
        assert preview["active_placement_count"] == "0"
        assert preview["continuing"] == []
        status, listing = await _get(http, stack, "/v1/placements")
        assert (status, listing) == (200, {"placements": [], "next_page_token": ""})


@pytest_asyncio.fixture
async def unconfirmed(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    async with running_pipeline(engine, emulator, confirm=False) as p:
        yield p


async def test_sync_progress_counts_and_totals_what_the_backfill_staged(
    unconfirmed: Pipeline, emulator: Emulator
) -> None:
    p, stack = unconfirmed, unconfirmed.stack

    async def finished() -> bool:
        async with aiohttp.ClientSession() as http:
            _, body = await _get(http, stack, "/v1/integrations/qbo/sync-progress")
        return bool(body["backfill"]["phase"] == "BACKFILL_PHASE_COMPLETED")

    await p.until(finished, within=30, what="the first backfill")
    async with aiohttp.ClientSession() as http:
        status, progress = await _get(http, stack, "/v1/integrations/qbo/sync-progress")
        assert status == 200
        _, staged = await _get(
            http, stack, "/v1/integrations/qbo/candidates", status="pending", page_size="1000"
        )
    assert progress["intake_mode"] == "PLACEMENT_INTAKE_MODE_PREVIEW"
    assert progress["company_name"] == "Acme Widgets LLC"
    assert progress["company_date"] == emulator.state.companies[REALM_ID].today().isoformat()
    (usd,) = progress["candidate_totals"]
    assert usd["pending_count"] == progress["backfill"]["candidates_staged"]
    assert int(usd["pending_count"]) == len(staged["candidates"]) > 0
    balances = sum(int(c["balance"]["minor_units"]) for c in staged["candidates"])
    assert usd["pending_balance_minor_units"] == str(balances)
    assert usd["excluded_count"] == "0"
    assert progress["backfill"]["placements_created"] == "0"  # nothing placed before confirming


async def _pay_one(p: Pipeline) -> mpb.Placement:
    """The bookkeeper records a payment in QuickBooks for one placement's whole balance."""
    reply = await p.matching.ListPlacements(mpb.ListPlacementsRequest(tenant_id=TENANT))
    target = reply.placements[0]
    amount = f"{target.balance.minor_units // 100}.{target.balance.minor_units % 100:02d}"
    await p.control(
        "POST",
        "payments",
        {
            "customer_id": target.customer_id,
            "amount": amount,
            "lines": [{"invoice_id": target.invoice_id, "amount": amount}],
        },
    )
    return await p.status_becomes(target.invoice_id, mpb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND)


async def test_placements_with_timelines_and_the_disconnect_preview(pipeline: Pipeline) -> None:
    p, stack = pipeline, pipeline.stack
    paid = await _pay_one(p)
    everything = await p.matching.ListPlacements(
        mpb.ListPlacementsRequest(tenant_id=TENANT, page_size=1000)
    )
    active = [x for x in everything.placements if x.status == mpb.PLACEMENT_STATUS_ACTIVE]
    assert len(active) >= 2
    async with aiohttp.ClientSession() as http:
        # The "closed, paid out-of-band" list, with the placement's audit timeline.
        status, listing = await _get(
            http,
            stack,
            "/v1/placements",
            status="resolved_out_of_band",
            reason="paid out-of-band",
        )
        assert status == 200, listing
        (item,) = listing["placements"]
        assert item["placement"]["placement_id"] == paid.placement_id
        assert item["placement"]["status"] == OOB
        assert item["placement"]["resolution_reason"] == "paid out-of-band"
        assert item["placement"]["review_flag_reason"] == ""  # zero values present
        actions = [e["action"] for e in item["timeline"]]
        assert "placement.resolved_out_of_band" in actions
        resolved = next(
            e for e in item["timeline"] if e["action"] == "placement.resolved_out_of_band"
        )
        assert resolved["details"]["payment_id"] == paid.resolving_payment_id
        assert item["timeline_next_page_token"] == ""

        # Another reason under the same status: nothing.
        _, none = await _get(
            http, stack, "/v1/placements", status="resolved_out_of_band", reason="written off"
        )
        assert none["placements"] == []
        # Paged: page_size 1 walks the active ones, each with its own timeline.
        seen: list[str] = []
        token = ""
        while True:
            params = {"status": "active", "page_size": "1"}
            if token:
                params["page_token"] = token
            _, page = await _get(http, stack, "/v1/placements", **params)
            assert len(page["placements"]) <= 1
            for entry in page["placements"]:
                assert entry["timeline"], "every placement has at least its intake event"
                assert {e["placement_id"] for e in entry["timeline"]} == {
                    entry["placement"]["placement_id"]
                }
                seen.append(entry["placement"]["placement_id"])
            token = page["next_page_token"]
            if not token:
                break
        assert sorted(seen) == sorted(x.placement_id for x in active)

        # One placement's timeline, paged on its own route.
        status, timeline = await _get(http, stack, f"/v1/placements/{paid.placement_id}/timeline")
        assert status == 200
        assert [e["action"] for e in timeline["timeline"]] == actions

        # The disconnect confirmation: what continues, and the option to stop outreach.
        status, preview = await _get(http, stack, "/v1/integrations/qbo/disconnect-preview")
        assert status == 200, preview
        assert preview["can_disconnect"] is True
        assert preview["company_name"] == "Acme Widgets LLC"
        assert preview["active_placement_count"] == str(len(active))
        (usd,) = preview["continuing"]
        assert usd["currency_code"] == "USD"
        assert usd["placement_count"] == str(len(active))
        assert usd["balance_minor_units"] == str(sum(x.balance.minor_units for x in active))
        assert preview["paused_placement_count"] == "0"
        assert preview["stop_all_outreach_available"] is True
        assert any("Active placements continue" in line for line in preview["consequences"])

        # Another tenant sees none of it.
        _, theirs = await _get(http, stack, "/v1/placements", tenant=OTHER)
        assert theirs["placements"] == []
        status, body = await _get(
            http, stack, f"/v1/placements/{paid.placement_id}/timeline", tenant=OTHER
        )
        assert (status, body["error"]["reason"]) == (404, "PLACEMENT_NOT_FOUND")
        status, body = await _get(http, stack, "/v1/placements/no-such-id/timeline")
        assert (status, body["error"]["reason"]) == (404, "PLACEMENT_NOT_FOUND")
        _, their_preview = await _get(
            http, stack, "/v1/integrations/qbo/disconnect-preview", tenant=OTHER
        )
        assert their_preview["active_placement_count"] == "0"
        assert their_preview["company_name"] == ""
        _, their_progress = await _get(
            http, stack, "/v1/integrations/qbo/sync-progress", tenant=OTHER
        )
        assert their_progress["state"] == "CONNECTION_STATE_NOT_CONNECTED"
        assert their_progress["backfill"]["invoices_seen"] == "0"
        assert their_progress["company_name"] == ""

        # Disconnecting with the stop-all-outreach choice in the body is accepted.
        async with http.delete(
            f"{stack.gateway_url}/v1/integrations/qbo",
            headers={"Authorization": stack.bearer(TENANT)},
            json={"reason": "testing", "stop_all_outreach": False},
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["state"] == "CONNECTION_STATE_DISCONNECTED"
        _, after = await _get(http, stack, "/v1/integrations/qbo/disconnect-preview")
        assert after["can_disconnect"] is False
        assert after["active_placement_count"] == str(len(active))  # placements continue


async def _page(env: str) -> tuple[int, dict[str, str], str]:
    settings = Settings.from_env(
        {"AICOLLECT_ENV": env, "AICOLLECT_JWT_SECRET": JWT_SECRET, "AICOLLECT_INTERNAL_TOKEN": "t"}
    )
    backends = Backends(
        integration=internal_channel("127.0.0.1:9", "t"),
        matcher=internal_channel("127.0.0.1:9", "t"),
    )
    async with TestClient(TestServer(create_app(settings, backends=backends))) as client:
        resp = await client.get("/dashboard/")
        text = await resp.text()
        status, headers = resp.status, dict(resp.headers)
        for name in ("app.js", "app.css"):
            asset = await client.get(f"/dashboard/{name}")
            assert asset.status == status
            text += await asset.text()
    await backends.integration.close(None)
    await backends.matcher.close(None)
    return status, headers, text


async def test_the_reference_page_is_served_in_local_mode_only() -> None:
    status, headers, text = await _page("local")
    assert status == 200
    assert "connect-src 'self'" in headers["Content-Security-Policy"]
    assert "Connect QuickBooks" in text
    # Nothing fetched from anywhere else, and no way to mint a token.
    assert 'src="http' not in text
    assert 'href="http' not in text
    assert 'fetch("http' not in text
    status, _, _ = await _page("production")
    assert status == 404
