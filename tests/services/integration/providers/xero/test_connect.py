"""Connecting Xero organisations through the gateway: the connect URL's scopes, the
consent's own organisation (``authEventId``), one grant stored once and refreshed once for
every organisation it covers, and disconnect revoking only with the last organisation."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.db.engine import make_sessionmaker
from aicollect.rpc.client import internal_channel
from services.integration.budget import Priority
from services.integration.deps import IntegrationDeps
from services.integration.models import AuditEvent, Connection, Grant
from services.integration.tokens import ReauthorizationRequired
from tests.conftest import INTERNAL_TOKEN, REALM_ID
from tests.helpers.connections import connect as qbo_connect
from tests.services.integration.providers.xero.conftest import (
    Xero,
    browser_like,
    connect,
    connect_url,
    disconnect,
    status,
)
from tests.stack import XERO_CLIENT_ID, Stack, enable_tenant


async def test_connect_url_asks_read_only_scopes_and_a_refresh_token(
    stack: Stack, xero: Xero
) -> None:
    await enable_tenant(stack, "acme", "xero")
    async with browser_like() as http:
        url = await connect_url(stack, http, "acme")
    assert url.startswith(f"{xero.base}/identity/connect/authorize?")
    query = parse_qs(urlsplit(url).query)
    scopes = set(query["scope"][0].split())
    assert "offline_access" in scopes
    assert scopes == {
        "offline_access",
        "accounting.invoices.read",
        "accounting.payments.read",
        "accounting.contacts.read",
        "accounting.settings.read",
    }
    assert all(s == "offline_access" or s.endswith(".read") for s in scopes)
    assert query["response_type"] == ["code"]
    assert query["redirect_uri"] == [f"{stack.gateway_url}/v1/integrations/xero/callback"]


async def test_a_tenant_not_enabled_for_xero_gets_no_connect_url(stack: Stack) -> None:
    await enable_tenant(stack, "acme", "qbo")  # QBO only
    async with (
        browser_like() as http,
        http.post(
            f"{stack.gateway_url}/v1/integrations/xero/connect-url",
            headers={"Authorization": stack.bearer("acme")},
        ) as resp,
    ):
        assert resp.status == 409
        body = await resp.json()
    assert "xero_enabled" in body["error"]["message"]


async def test_connect_takes_the_organisation_chosen_in_this_consent(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    older = await xero.organisation("Older Ltd")
    chosen = await xero.organisation("Chosen Ltd")
    # The same Xero user connected another organisation earlier (through another app
    # flow of ours that was then abandoned): /connections lists both.
    assert (await connect(stack, "first", [older]))["xero"] == ["connected"]
    landed = await connect(stack, "acme", [chosen])
    assert landed["xero"] == ["connected"]
    view = await status(stack, "acme")
    assert view["state"] == "CONNECTION_STATE_CONNECTED"
    assert view["realm_id"] == chosen  # not the first connection the token sees
    assert view["company_name"] == "Chosen Ltd"
    assert view["provider"] == "PROVIDER_XERO"
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        rows = {r.tenant_id: r for r in (await session.execute(select(Connection))).scalars()}
        grants = list((await session.execute(select(Grant))).scalars())
    # One grant for the one Xero user, stored once; no token on the connections.
    assert len(grants) == 1
    assert {rows["first"].grant_id, rows["acme"].grant_id} == {grants[0].grant_id}
    assert rows["acme"].access_token is None
    assert rows["acme"].refresh_token is None
    assert grants[0].refresh_token is not None  # sealed, never the token itself
    assert grants[0].subject  # the Xero user (xero_userid)


async def test_a_consent_of_two_organisations_connects_the_one_not_held_by_another_tenant(
    stack: Stack, xero: Xero
) -> None:
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    await connect(stack, "north-co", [north])
    # One consent choosing both: north is north-co's, so south-co gets south.
    landed = await connect(stack, "south-co", [north, south])
    assert landed["xero"] == ["connected"]
    assert (await status(stack, "south-co"))["realm_id"] == south
    assert (await status(stack, "north-co"))["realm_id"] == north


async def test_a_consent_of_two_free_organisations_is_refused_and_changes_nothing(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    one = await xero.organisation("One Ltd")
    two = await xero.organisation("Two Ltd")
    landed = await connect(stack, "acme", [one, two])
    assert landed["xero"] == ["error"]
    assert landed["reason"] == ["several_organisations"]
    assert (await status(stack, "acme"))["state"] == "CONNECTION_STATE_NOT_CONNECTED"
    # Nothing of ours uses that grant: it was revoked (and with it both connections).
    grants = await xero.grants()
    assert [g["revoked"] for g in grants] == [True]
    assert await xero.connections(one) == []
    assert await xero.connections(two) == []
    async with make_sessionmaker(engine)() as session:
        assert list((await session.execute(select(Grant))).scalars()) == []
        refused = (
            await session.execute(
                select(AuditEvent.reason).where(AuditEvent.action == "connection.refused")
            )
        ).scalars()
        assert list(refused) == ["several_organisations"]


async def test_one_refresh_serves_every_organisation_of_the_grant(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    await connect(stack, "north-co", [north])
    await connect(stack, "south-co", [south])
    sessions = make_sessionmaker(engine)
    async with sessions.begin() as session:  # the access token is about to expire
        await session.execute(
            update(Grant).values(access_expires_at=text("now() + interval '1 minute'"))
        )
    tokens = stack.deps.tokens
    before = sum(g["refreshes"] for g in await xero.grants())
    got = await asyncio.gather(*(tokens.access_token(t) for t in ["north-co", "south-co"] * 5))
    after = sum(g["refreshes"] for g in await xero.grants())
    assert after - before == 1  # one refresh for both organisations, ten callers
    assert len({a.token for a in got}) == 1
    assert {a.realm_id for a in got} == {north, south}
    # The rotated token works for both organisations.
    for tenant, org in (("north-co", north), ("south-co", south)):
        reader = stack.deps.syncs["xero"].reader(tenant, org, Priority.WEBHOOK)
        assert (await reader.company_time())[:4].isdigit()


async def test_disconnect_revokes_only_when_the_last_organisation_goes(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    await connect(stack, "north-co", [north])
    await connect(stack, "south-co", [south])
    assert len(await xero.connections(north)) == 1

    first = await disconnect(stack, "north-co")
    assert first["state"] == "CONNECTION_STATE_DISCONNECTED"
    assert first["token_revocation"] == "TOKEN_REVOCATION_NOT_NEEDED"
    assert await xero.connections(north) == []  # that organisation alone was released
    assert len(await xero.connections(south)) == 1
    assert not any(g["revoked"] for g in await xero.grants())
    # south-co still reads its organisation with the shared grant.
    assert (await status(stack, "south-co"))["state"] == "CONNECTION_STATE_CONNECTED"

    last = await disconnect(stack, "south-co")
    assert last["token_revocation"] == "TOKEN_REVOCATION_REVOKED"
    assert await xero.connections(south) == []
    assert all(g["revoked"] for g in await xero.grants())
    async with make_sessionmaker(engine)() as session:
        assert list((await session.execute(select(Grant))).scalars()) == []
        actions = list(
            (
                await session.execute(
                    select(AuditEvent.action, AuditEvent.tenant_id).order_by(AuditEvent.id)
                )
            ).all()
        )
    assert ("connection.disconnected", "north-co") in actions
    assert ("connection.tokens_revoked", "south-co") in actions


async def test_an_organisation_disconnected_in_xero_needs_reauthorization_alone(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    await connect(stack, "north-co", [north])
    await connect(stack, "south-co", [south])
    await xero.control("POST", f"/organisations/{north}/disconnect", {"client_id": XERO_CLIENT_ID})
    sync = stack.deps.syncs["xero"]
    with pytest.raises(ReauthorizationRequired):
        await sync.reader("north-co", north, Priority.WEBHOOK).company_time()
    assert (await status(stack, "north-co"))["state"] == "CONNECTION_STATE_NEEDS_REAUTHORIZATION"
    # The grant itself still works: the other organisation reads on.
    assert await sync.reader("south-co", south, Priority.WEBHOOK).company_time()
    assert (await status(stack, "south-co"))["state"] == "CONNECTION_STATE_CONNECTED"


async def test_a_grant_xero_refuses_takes_every_organisation_on_it_to_reauthorization(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    await connect(stack, "north-co", [north])
    await connect(stack, "south-co", [south])
    # The other reading of an UNCONFIRMED behaviour: a user with no connection left has
    # no working refresh token either.
    await xero.control("PATCH", "/settings", {"refresh_without_connections": False})
    for org in (north, south):
        await xero.control(
            "POST", f"/organisations/{org}/disconnect", {"client_id": XERO_CLIENT_ID}
        )
    async with make_sessionmaker(engine).begin() as session:  # the access token expires
        await session.execute(update(Grant).values(access_expires_at=text("now()")))
    with pytest.raises(ReauthorizationRequired):
        await stack.deps.tokens.access_token("north-co")
    for tenant in ("north-co", "south-co"):
        view = await status(stack, tenant)
        assert view["state"] == "CONNECTION_STATE_NEEDS_REAUTHORIZATION", view
    async with make_sessionmaker(engine)() as session:
        grant = (await session.execute(select(Grant))).scalar_one()
        assert grant.refresh_token is None  # nothing left that could be used
        audited = (
            await session.execute(
                select(AuditEvent.tenant_id).where(
                    AuditEvent.action == "connection.needs_reauthorization"
                )
            )
        ).scalars()
        assert sorted(str(t) for t in audited) == ["north-co", "south-co"]


async def test_reconnecting_to_another_organisation_releases_the_old_one(
    stack: Stack, xero: Xero
) -> None:
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    await connect(stack, "acme", [north])
    await connect(stack, "acme", [south])  # the same Xero user, now choosing south
    assert (await status(stack, "acme"))["realm_id"] == south
    assert await xero.connections(north) == []  # no access kept to what we do not use
    assert len(await xero.connections(south)) == 1
    assert not any(g["revoked"] for g in await xero.grants())


async def test_switching_from_xero_to_quickbooks_revokes_the_xero_grant(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    org = await xero.organisation("Acme NZ Ltd")
    await connect(stack, "acme", [org])
    await enable_tenant(stack, "acme", "qbo")
    async with internal_channel(stack.integration_addr, INTERNAL_TOKEN) as channel:
        reply = await qbo_connect(channel, "acme")
    assert reply.connected, reply
    async with make_sessionmaker(engine)() as session:
        row = await session.get(Connection, "acme")
        assert row is not None
        assert (row.provider, row.grant_id, row.platform_connection_id) == ("qbo", None, None)
        assert list((await session.execute(select(Grant))).scalars()) == []

    async def revoked() -> bool:
        return all(g["revoked"] for g in await xero.grants())

    deadline = asyncio.get_running_loop().time() + 10
    while not await revoked():
        assert asyncio.get_running_loop().time() < deadline, "the Xero grant was not revoked"
        await asyncio.sleep(0.1)
    token = await stack.deps.tokens.access_token("acme")
    assert token.grant_id is None  # QBO's own tokens, on the connection row
    assert token.realm_id == REALM_ID


async def test_reconnecting_as_another_xero_user_revokes_the_unused_grant(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    await connect(stack, "acme", [north], user="alice")
    await connect(stack, "acme", [south], user="bob")
    assert (await status(stack, "acme"))["realm_id"] == south
    by_user = {g["user_id"]: g["revoked"] for g in await xero.grants()}
    assert by_user == {"alice": True, "bob": False}
    assert await xero.connections(north) == []
    assert len(await xero.connections(south)) == 1
    async with make_sessionmaker(engine)() as session:
        subjects = [g.subject for g in (await session.execute(select(Grant))).scalars()]
    assert len(subjects) == 1  # alice's grant is gone, bob's stored


async def test_two_replicas_refresh_a_shared_grant_once(
    stack: Stack, xero: Xero, engine: AsyncEngine
) -> None:
    """Another integration replica (its own process state, the same database): callers for
    both organisations in both replicas, one refresh at Xero."""
    north = await xero.organisation("North Ltd")
    south = await xero.organisation("South Ltd")
    await connect(stack, "north-co", [north])
    await connect(stack, "south-co", [south])
    async with make_sessionmaker(engine).begin() as session:
        await session.execute(update(Grant).values(access_expires_at=text("now()")))
    before = sum(g["refreshes"] for g in await xero.grants())
    async with (
        aiohttp.ClientSession() as http,
        internal_channel(stack.matcher_addr, INTERNAL_TOKEN) as matcher,
    ):
        other = IntegrationDeps.create(stack.deps.settings, engine, http, matcher)
        try:
            got = await asyncio.gather(
                *(
                    deps.tokens.access_token(tenant)
                    for deps in (stack.deps, other)
                    for tenant in ("north-co", "south-co") * 3
                )
            )
        finally:
            await other.inbox_writer.close()
    assert sum(g["refreshes"] for g in await xero.grants()) - before == 1
    assert len({t.token for t in got}) == 1
    assert stack.deps.tokens.grants is not None
    assert other.tokens.grants is not None
    assert stack.deps.tokens.grants.refresh_count + other.tokens.grants.refresh_count == 1
