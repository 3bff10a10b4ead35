"""Xero's OAuth 2.0 as the emulator plays it: consent, tokens, connections, revocation."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.emulators.xero.conftest import (
    API,
    CLIENT_ID,
    CLIENT_SECRET,
    READ_SCOPES,
    REDIRECT_URI,
    Emulator,
    basic,
    claims,
    make_config,
)


async def test_the_consent_page_lets_the_user_choose_several_organisations(
    emulator: Emulator,
) -> None:
    north = await emulator.organisation(name="North Ltd")
    south = await emulator.organisation(name="South Ltd")
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": READ_SCOPES,
        "redirect_uri": REDIRECT_URI,
        "state": "abc",
    }
    async with emulator.http.get(
        f"{emulator.base}/identity/connect/authorize", params=params
    ) as page:
        html = await page.text()
    assert page.status == 200
    assert 'type="checkbox" name="tenant"' in html
    assert "North Ltd" in html
    assert "South Ltd" in html
    form = [(k, v) for k, v in params.items()] + [
        ("tenant", north),
        ("tenant", south),
        ("decision", "allow"),
    ]
    async with emulator.http.post(
        f"{emulator.base}/identity/connect/authorize", data=form, allow_redirects=False
    ) as resp:
        assert resp.status == 302
        query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["state"] == ["abc"]
    status, body = await emulator.token(
        {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT_URI}
    )
    assert status == 200
    assert body["expires_in"] == 1800
    assert body["token_type"] == "Bearer"
    status, connections, headers = await emulator.get(body["access_token"], "/connections")
    assert status == 200
    assert {c["tenantId"] for c in connections} == {north, south}
    event = claims(body["access_token"])["authentication_event_id"]
    assert {c["authEventId"] for c in connections} == {event}
    assert all(c["tenantType"] == "ORGANISATION" for c in connections)
    # /connections is tenantless: only the app-wide minute header.
    assert "X-AppMinLimit-Remaining" in headers
    assert "X-MinLimit-Remaining" not in headers
    assert "X-DayLimit-Remaining" not in headers


async def test_cancel_redirects_with_access_denied(emulator: Emulator) -> None:
    await emulator.organisation()
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": READ_SCOPES,
        "redirect_uri": REDIRECT_URI,
        "state": "s1",
        "emulator_decision": "deny",
    }
    async with emulator.http.get(
        f"{emulator.base}/identity/connect/authorize", params=params, allow_redirects=False
    ) as resp:
        assert parse_qs(urlsplit(resp.headers["Location"]).query) == {
            "error": ["access_denied"],
            "state": ["s1"],
        }


async def test_connections_accumulate_and_auth_event_id_names_this_consent(
    emulator: Emulator,
) -> None:
    first = await emulator.organisation(name="First")
    second = await emulator.organisation(name="Second")
    one = await emulator.connect([first])
    two = await emulator.connect([second])
    event = claims(two.access_token)["authentication_event_id"]
    assert event != claims(one.access_token)["authentication_event_id"]
    _, everything, _ = await emulator.get(two, "/connections")
    assert {c["tenantId"] for c in everything} == {first, second}
    _, this_time, _ = await emulator.get(two, "/connections", params={"authEventId": event})
    assert [c["tenantId"] for c in this_time] == [second]
    # One user token reaches every organisation the user connected.
    for tenant in (first, second):
        status, body, _ = await emulator.api(two, tenant, "Organisation")
        assert status == 200
        assert body["Organisations"][0]["OrganisationID"] == tenant


async def test_access_tokens_last_thirty_minutes(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    await emulator.advance(1799)
    assert (await emulator.api(tokens, tenant, "Organisation"))[0] == 200
    await emulator.advance(2)
    status, body, _ = await emulator.api(tokens, tenant, "Organisation")
    assert status == 401
    assert body["Detail"] == "TokenExpired"


async def test_refresh_rotates_with_a_thirty_minute_grace_for_a_lost_response(
    emulator: Emulator,
) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    status, first = await emulator.refresh(tokens.refresh_token)
    assert status == 200
    assert first["refresh_token"] != tokens.refresh_token
    # The response was lost: the old token still works within 30 minutes.
    await emulator.advance(29 * 60)
    status, retry = await emulator.refresh(tokens.refresh_token)
    assert status == 200
    assert (await emulator.api(retry["access_token"], tenant, "Organisation"))[0] == 200
    await emulator.advance(2 * 60)
    status, body = await emulator.refresh(tokens.refresh_token)
    assert (status, body) == (400, {"error": "invalid_grant"})
    # The newest one works.
    status, _ = await emulator.refresh(retry["refresh_token"])
    assert status == 200
    grants = (await emulator.control("GET", "/grants"))["grants"]
    assert grants[0]["refreshes"] == 3
    assert grants[0]["grace_refreshes"] == 1


async def test_an_unused_refresh_token_expires_after_sixty_days(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    await emulator.advance(59 * 86_400)
    status, fresh = await emulator.refresh(tokens.refresh_token)
    assert status == 200  # used within 60 days: a new 60 days start
    await emulator.advance(59 * 86_400)
    assert (await emulator.refresh(fresh["refresh_token"]))[0] == 200
    await emulator.advance(61 * 86_400)
    assert (await emulator.refresh(fresh["refresh_token"]))[0] != 200


async def test_client_authentication_by_basic_or_in_the_body(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    async with emulator.http.post(
        f"{emulator.base}/connect/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens.refresh_token,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
        },
    ) as resp:
        assert resp.status == 200
    status, body = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": "x"}, auth=basic(CLIENT_ID, "wrong")
    )
    assert (status, body) == (400, {"error": "invalid_client"})


async def test_without_offline_access_there_is_no_refresh_token(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant], scope="accounting.transactions.read")
    assert "refresh_token" not in tokens.body


async def test_pkce_verifier_must_match(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    verifier = "v" * 50
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    for given, expected in (("w" * 50, 400), (verifier, 200)):
        code = await emulator.authorize(
            [tenant], code_challenge=challenge, code_challenge_method="S256"
        )
        status, _ = await emulator.token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": given,
            }
        )
        assert status == expected


async def test_a_granular_scope_app_cannot_ask_for_broad_scopes(emulator: Emulator) -> None:
    await emulator.organisation()
    await emulator.control("PATCH", f"/apps/{CLIENT_ID}", {"scope_style": "granular"})
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": READ_SCOPES,
        "redirect_uri": REDIRECT_URI,
        "state": "s",
        "emulator_decision": "allow",
    }
    async with emulator.http.get(
        f"{emulator.base}/identity/connect/authorize", params=params, allow_redirects=False
    ) as resp:
        assert "error=invalid_scope" in resp.headers["Location"]
    granular = "offline_access accounting.invoices.read accounting.payments.read"
    tenant = next(iter(emulator.state.organisations))
    tokens = await emulator.connect([tenant], scope=granular)
    assert (await emulator.api(tokens, tenant, "Invoices"))[0] == 200
    assert (await emulator.api(tokens, tenant, "Payments"))[0] == 200
    # No contacts or settings scope: 401.
    assert (await emulator.api(tokens, tenant, "Contacts"))[0] == 401
    assert (await emulator.api(tokens, tenant, "Organisation"))[0] == 401


async def test_delete_connection_disconnects_one_organisation_only(emulator: Emulator) -> None:
    keep = await emulator.organisation(name="Keep")
    drop = await emulator.organisation(name="Drop")
    tokens = await emulator.connect([keep, drop])
    _, connections, _ = await emulator.get(tokens, "/connections")
    gone = next(c["id"] for c in connections if c["tenantId"] == drop)
    headers = {"Authorization": f"Bearer {tokens.access_token}"}
    async with emulator.http.delete(f"{emulator.base}/connections/{gone}", headers=headers) as r:
        assert r.status == 204
    async with emulator.http.delete(f"{emulator.base}/connections/{gone}", headers=headers) as r:
        assert r.status == 404
    assert (await emulator.api(tokens, drop, "Organisation"))[0] == 403
    assert (await emulator.api(tokens, keep, "Organisation"))[0] == 200
    # The refresh token stays valid while another connection remains.
    assert (await emulator.refresh(tokens.refresh_token))[0] == 200


async def test_revocation_removes_every_connection_of_the_user(emulator: Emulator) -> None:
    first = await emulator.organisation()
    second = await emulator.organisation()
    tokens = await emulator.connect([first, second])
    async with emulator.http.post(
        f"{emulator.base}/connect/revocation",
        data={"token": tokens.refresh_token},
        headers={"Authorization": basic()},
    ) as resp:
        assert resp.status == 200
    assert (await emulator.control("GET", "/connections"))["connections"] == []
    assert (await emulator.api(tokens, first, "Organisation"))[0] == 401
    assert (await emulator.refresh(tokens.refresh_token))[0] == 400


async def test_disconnect_in_xero_ends_api_access_to_that_organisation(
    emulator: Emulator,
) -> None:
    tenant = await emulator.organisation()
    other = await emulator.organisation()
    tokens = await emulator.connect([tenant, other])
    removed = await emulator.control("POST", f"/organisations/{tenant}/disconnect", {})
    assert len(removed["removed_connections"]) == 1
    status, body, _ = await emulator.api(tokens, tenant, "Invoices")
    assert status == 403
    assert body["Title"] == "Forbidden"
    _, connections, _ = await emulator.get(tokens, "/connections")
    assert [c["tenantId"] for c in connections] == [other]


@pytest.mark.parametrize(
    ("emulator_config", "expected"),
    [
        (make_config(refresh_without_connections=True), 200),
        (make_config(refresh_without_connections=False), 400),
    ],
)
async def test_refresh_after_the_last_connection_is_gone_is_a_setting(
    emulator: Emulator, expected: int
) -> None:
    """UNCONFIRMED in Xero's documentation: both readings are available."""
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    await emulator.control("POST", f"/organisations/{tenant}/disconnect", {})
    status, _ = await emulator.refresh(tokens.refresh_token)
    assert status == expected


async def test_the_api_needs_the_tenant_header(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    status, _, _ = await emulator.get(tokens, f"{API}/Invoices")
    assert status == 403
