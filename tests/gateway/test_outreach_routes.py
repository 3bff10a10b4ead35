"""The dashboard pauses and resumes outreach through the gateway (gateway/outreach.py): the
tenant from the JWT, the caller as the actor, over the real matcher on PostgreSQL."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.helpers.dashboard import bearer, dashboard
from tests.services.matcher.conftest import CUSTOMER, REALM, Matcher, placement_input

__all__ = ["dashboard"]

Dashboard = tuple[TestClient[Any, Any], Matcher]


async def test_pause_and_resume_a_placement_a_debtor_and_everything(dashboard: Dashboard) -> None:
    client, matcher = dashboard
    first, second = await matcher.place(placement_input("70"), placement_input("71", 5_000))
    base = f"/v1/placements/{first.placement_id}/outreach"

    resp = await client.post(
        f"{base}/pause", json={"reason": "debtor disputes"}, headers=bearer("acme")
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["placements_paused"] == 1
    assert body["pause"]["paused_by"] == "jane@acme.test"
    assert body["pause"]["target"] == {"placement_id": first.placement_id}

    again = await client.post(f"{base}/pause", json={"reason": "twice"}, headers=bearer("acme"))
    assert again.status == 409
    assert (await again.json())["error"]["reason"] == "OUTREACH_ALREADY_PAUSED"

    debtor = f"/v1/debtors/{REALM}/{CUSTOMER}/outreach"
    resp = await client.post(
        f"{debtor}/pause", json={"reason": "bankruptcy"}, headers=bearer("acme")
    )
    assert (await resp.json())["placements_paused"] == 1  # the other one
    resp = await client.post(
        "/v1/outreach/pause", json={"reason": "stop all"}, headers=bearer("acme")
    )
    assert (await resp.json())["placements_paused"] == 0

    listed = await client.get("/v1/outreach/pauses", headers=bearer("acme"))
    assert len((await listed.json())["pauses"]) == 3
    resp = await client.post("/v1/outreach/resume", json={"reason": "back"}, headers=bearer("acme"))
    assert (await resp.json())["placements_resumed"] == 0  # its debtor is still paused
    resp = await client.post(f"{debtor}/resume", json={"reason": "settled"}, headers=bearer("acme"))
    assert (await resp.json())["placements_resumed"] == 1
    assert [k for k, _, _ in await matcher.outbox(second.placement_id)] == ["pause", "resume"]
    assert [k for k, _, _ in await matcher.outbox(first.placement_id)] == ["pause"]


async def test_bad_requests_change_nothing(dashboard: Dashboard) -> None:
    client, matcher = dashboard
    (placement,) = await matcher.place(placement_input("70"))
    base = f"/v1/placements/{placement.placement_id}/outreach"
    assert (await client.post(f"{base}/pause", json={"reason": "x"})).status == 401
    missing = await client.post(f"{base}/pause", json={}, headers=bearer("acme"))
    assert missing.status == 400
    assert (await missing.json())["error"]["reason"] == "FIELD_INVALID"
    typed = await client.post(f"{base}/pause", json={"reason": 7}, headers=bearer("acme"))
    assert typed.status == 400
    # Another tenant's placement is not found for acme.
    other = await client.post(f"{base}/pause", json={"reason": "x"}, headers=bearer("globex"))
    assert other.status == 404
    flag = await client.post("/v1/outreach/pauses?include_resumed=maybe", headers=bearer("acme"))
    assert flag.status == 405
    bad = await client.get("/v1/outreach/pauses?include_resumed=maybe", headers=bearer("acme"))
    assert bad.status == 400
    disconnect = await client.delete(
        "/v1/integrations/qbo", json={"stop_all_outreach": "yes"}, headers=bearer("acme")
    )
    assert disconnect.status == 400
    assert await matcher.outbox() == []
    listed = await client.get("/v1/outreach/pauses?include_resumed=true", headers=bearer("acme"))
    assert (await listed.json())["pauses"] == []
