"""Connect, callback, disconnect and status over gRPC, with the Intuit emulator on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.rpc.errors import error_info
from services.integration.models import AuditEvent, Connection, OAuthState
from tests.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    DASHBOARD_URL,
    REALM_ID,
    REDIRECT_URI,
    Emulator,
)
from tests.helpers.connections import TENANT, completion, connect, consent, enable


def reason_of(url: str) -> tuple[str, str]:
    query = parse_qs(urlsplit(url).query)
    return query["qbo"][0], query.get("reason", [""])[0]


async def test_connect_url_refused_unless_enabled(integration_channel: grpc.aio.Channel) -> None:
    stub = igrpc.IntegrationServiceStub(integration_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "qbo_enabled" in (info.value.details() or "")
    detail = error_info(info.value)
    assert detail is not None
    assert detail.reason == "INTEGRATION_DISABLED"

    await enable(integration_channel)
    await agrpc.AdminServiceStub(integration_channel).UpdatePlatformSettings(
        apb.UpdatePlatformSettingsRequest(
            settings=apb.PlatformSettings(qbo_kill_switch=True),
            update_mask=FieldMask(paths=["qbo_kill_switch"]),
            actor="oncall",
            reason="incident",
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    detail = error_info(info.value)
    assert detail is not None
    assert detail.reason == "KILL_SWITCH_ON"


async def test_authorize_url_asks_for_accounting_only_with_a_hashed_state(
    integration_channel: grpc.aio.Channel, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await enable(integration_channel)
    reply = await igrpc.IntegrationServiceStub(integration_channel).CreateConnectUrl(
        pb.CreateConnectUrlRequest(tenant_id=TENANT)
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(reply.authorize_url).query).items()}
    assert query["scope"] == "com.intuit.quickbooks.accounting"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["response_type"] == "code"
    assert len(query["state"]) >= 22  # 22 base64url characters carry 128 bits; we send 256
    async with sessions() as session:
        rows = (await session.execute(select(OAuthState))).scalars().all()
    assert len(rows) == 1
    assert rows[0].tenant_id == TENANT
    assert query["state"].encode() not in rows[0].state_hash
    # The browser binding: 256 random bits, only its SHA-256 is stored.
    assert len(reply.browser_binding) >= 43
    assert rows[0].binding_hash == hashlib.sha256(reply.browser_binding.encode()).digest()
    raw = await _dump_schema(sessions)
    assert query["state"] not in raw
    assert reply.browser_binding not in raw


async def _dump_schema(sessions: async_sessionmaker[AsyncSession]) -> str:
    """Every row of schema ``integration`` as text, to look for plaintext secrets."""
    async with sessions() as session:
        tables = (
            await session.execute(
                text(
                    "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = 'integration'"
                )
            )
        ).scalars()
        chunks = []
        for table in tables:
            rows = await session.execute(text(f'SELECT * FROM integration."{table}"'))
            chunks += [repr(tuple(row)) for row in rows]
    return "\n".join(chunks)


async def test_connect_end_to_end(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await enable(integration_channel)
    reply = await connect(integration_channel)
    assert reply.connected
    assert reply.redirect_url == f"{DASHBOARD_URL}?qbo=connected"
    assert reply.company_name == "Acme Widgets LLC"

    status = await igrpc.IntegrationServiceStub(integration_channel).GetConnectionStatus(
        pb.GetConnectionStatusRequest(tenant_id=TENANT)
    )
    assert status.state == pb.CONNECTION_STATE_CONNECTED
    assert status.realm_id == REALM_ID
    assert status.company_name == "Acme Widgets LLC"
    assert status.HasField("connect_time")
    assert status.qbo_enabled
    assert not status.qbo_kill_switch

    # Tokens are stored sealed: no token the emulator issued is readable in the database.
    grant = next(g for g in emulator.state.oauth.grants.values() if g.realm_id == REALM_ID)
    raw = await _dump_schema(sessions)
    assert grant.refresh_token not in raw
    assert grant.access_tokens
    for access_token in grant.access_tokens:
        assert access_token not in raw
    async with sessions() as session:
        audit = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert "connection.connected" in audit


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda cb: {**cb, "state": "forged-state-value"}, "invalid_state"),
        (lambda cb: {**cb, "state": ""}, "invalid_state"),
        (lambda cb: {**cb, "realmId": ""}, "missing_realm"),
        (lambda cb: {**cb, "code": "not-a-real-code"}, "code_exchange_failed"),
        (
            lambda cb: {"state": cb["state"], "error": "access_denied"},
            "access_denied",
        ),
        (
            lambda cb: {"state": cb["state"], "error": "server_error"},
            "authorization_error",
        ),
    ],
)
async def test_callback_failures_redirect_with_a_reason(
    integration_channel: grpc.aio.Channel,
    mutate: Any,
    expected: str,
) -> None:
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    callback = mutate(await consent(link.authorize_url))
    reply = await stub.CompleteConnection(
        pb.CompleteConnectionRequest(
            state=callback.get("state", ""),
            code=callback.get("code", ""),
            realm_id=callback.get("realmId", ""),
            error=callback.get("error", ""),
            browser_binding=link.browser_binding,
        )
    )
    assert not reply.connected
    assert reply.error_code == expected
    assert reply_redirect_is_dashboard(reply.redirect_url)
    assert reason_of(reply.redirect_url) == ("error", expected)
    status = await stub.GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id=TENANT))
    assert status.state == pb.CONNECTION_STATE_NOT_CONNECTED


def reply_redirect_is_dashboard(url: str) -> bool:
    return url.startswith(DASHBOARD_URL + "?")


async def test_state_is_single_use_and_expires(
    integration_channel: grpc.aio.Channel, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    callback = await consent(link.authorize_url)
    request = completion(callback, link.browser_binding)
    assert (await stub.CompleteConnection(request)).connected
    replay = await stub.CompleteConnection(request)
    assert replay.error_code == "state_already_used"

    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    callback = await consent(link.authorize_url)
    async with sessions.begin() as session:
        await session.execute(
            update(OAuthState)
            .where(OAuthState.consumed_at.is_(None))
            .values(expires_at=text("now() - interval '1 second'"))
        )
    expired = await stub.CompleteConnection(completion(callback, link.browser_binding))
    assert expired.error_code == "expired_state"


async def test_concurrent_callbacks_with_one_state_make_one_connection(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    callback = await consent(link.authorize_url)
    request = completion(callback, link.browser_binding)
    replies = await asyncio.gather(*(stub.CompleteConnection(request) for _ in range(10)))
    assert sum(r.connected for r in replies) == 1
    assert {r.error_code for r in replies if not r.connected} == {"state_already_used"}
    assert emulator.state.oauth.token_calls["authorization_code"] == 1
    async with sessions() as session:
        assert len((await session.execute(select(Connection))).scalars().all()) == 1


async def test_realm_connected_to_another_tenant_is_refused(
    integration_channel: grpc.aio.Channel,
) -> None:
    await enable(integration_channel, "acme")
    await enable(integration_channel, "globex")
    assert (await connect(integration_channel, "acme")).connected
    second = await connect(integration_channel, "globex")
    assert not second.connected
    assert second.error_code == "realm_in_use"
    status = await igrpc.IntegrationServiceStub(integration_channel).GetConnectionStatus(
        pb.GetConnectionStatusRequest(tenant_id="globex")
    )
    assert status.state == pb.CONNECTION_STATE_NOT_CONNECTED


async def test_disconnect_revokes_wipes_and_allows_reconnect(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    stub = igrpc.IntegrationServiceStub(integration_channel)
    reply = await stub.Disconnect(
        pb.DisconnectRequest(tenant_id=TENANT, actor="jane@acme", reason="switching tools")
    )
    assert reply.state == pb.CONNECTION_STATE_DISCONNECTED
    assert reply.token_revocation == pb.TOKEN_REVOCATION_REVOKED
    assert emulator.state.oauth.revoke_calls == 1
    assert all(g.revoked for g in emulator.state.oauth.grants.values())
    async with sessions() as session:
        row = await session.get(Connection, TENANT)
        assert row is not None
        assert (row.access_token, row.refresh_token) == (None, None)
        actions = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert "connection.disconnected" in actions
    assert "connection.tokens_revoked" in actions

    status = await stub.GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id=TENANT))
    assert status.state == pb.CONNECTION_STATE_DISCONNECTED
    assert status.disconnect_origin == pb.DISCONNECT_ORIGIN_USER
    assert status.HasField("disconnect_time")

    again = await stub.Disconnect(pb.DisconnectRequest(tenant_id=TENANT))
    assert again.token_revocation == pb.TOKEN_REVOCATION_NOT_NEEDED

    assert (await connect(integration_channel)).connected
    status = await stub.GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id=TENANT))
    assert status.state == pb.CONNECTION_STATE_CONNECTED


async def test_disconnect_unknown_tenant_is_not_found(
    integration_channel: grpc.aio.Channel,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await igrpc.IntegrationServiceStub(integration_channel).Disconnect(
            pb.DisconnectRequest(tenant_id="nobody")
        )
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_no_secret_reaches_logs_errors_or_replies(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    callback = await consent(link.authorize_url)
    replies: list[Any] = []
    request = completion(callback, link.browser_binding)
    replies.append(await stub.CompleteConnection(request))
    replies.append(await stub.CompleteConnection(request))  # a refused replay
    replies.append(await stub.GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id=TENANT)))
    replies.append(await stub.Disconnect(pb.DisconnectRequest(tenant_id=TENANT)))
    grant = next(iter(emulator.state.oauth.grants.values()))
    secrets = [
        callback["state"],
        link.browser_binding,
        callback["code"],
        CLIENT_SECRET,
        grant.refresh_token,
        *grant.access_tokens,
    ]
    # The emulator's own access log stands for Intuit's logs, not ours.
    ours = [r for r in caplog.records if r.name != "aiohttp.access"]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    text_seen = logged + "\n".join(str(r) for r in replies)
    for secret in secrets:
        assert secret not in text_seen


async def test_failed_revoke_is_reported_retried_and_tokens_wiped_anyway(
    integration_channel: grpc.aio.Channel,
    integration_deps: Any,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    from services.integration.models import PendingRevocation

    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    async with aiohttp.ClientSession() as http:
        await http.put(
            f"{emulator.url}/_emulator/faults",
            json={"scope": ["token"], "error_rate": 1.0, "error_status": 503},
        )
    reply = await igrpc.IntegrationServiceStub(integration_channel).Disconnect(
        pb.DisconnectRequest(tenant_id=TENANT, actor="jane", reason="leaving")
    )
    assert reply.state == pb.CONNECTION_STATE_DISCONNECTED
    assert reply.token_revocation == pb.TOKEN_REVOCATION_PENDING_RETRY
    assert "revocation" in reply.revocation_detail
    async with sessions() as session:
        row = await session.get(Connection, TENANT)
        assert row is not None
        assert (row.access_token, row.refresh_token) == (None, None)  # wiped either way
        pending = (await session.execute(select(PendingRevocation))).scalars().all()
    assert len(pending) == 1
    assert pending[0].attempts >= 1
    assert not any(g.revoked for g in emulator.state.oauth.grants.values())

    async with aiohttp.ClientSession() as http:
        await http.delete(f"{emulator.url}/_emulator/faults")
    done, _ = await integration_deps.connections.retry_revocation(pending[0].id)
    assert done
    assert all(g.revoked for g in emulator.state.oauth.grants.values())
    async with sessions() as session:
        assert not (await session.execute(select(PendingRevocation))).scalars().all()
        actions = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert "connection.tokens_revoked" in actions


async def _refusals(sessions: async_sessionmaker[AsyncSession]) -> list[AuditEvent]:
    async with sessions() as session:
        rows = await session.execute(
            select(AuditEvent).where(AuditEvent.action == "connection.refused")
        )
        return list(rows.scalars())


@pytest.mark.parametrize("presented", ["missing", "another_flows"])
async def test_a_state_completes_only_in_the_browser_that_started_it(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
    presented: str,
) -> None:
    """Connection fixation (RFC 6749 s. 10.12): a bookkeeper who opens a link minted for
    this tenant in their own browser must not connect their books to it."""
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    other = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    callback = await consent(link.authorize_url)
    binding = "" if presented == "missing" else other.browser_binding
    reply = await stub.CompleteConnection(completion(callback, binding))
    assert not reply.connected
    assert reply.error_reason == pb.CONNECT_ERROR_REASON_BROWSER_MISMATCH
    assert reason_of(reply.redirect_url) == ("error", "browser_mismatch")
    assert reply_redirect_is_dashboard(reply.redirect_url)
    # The code was never exchanged, so no grant exists at Intuit; nothing was stored.
    assert emulator.state.oauth.token_calls["authorization_code"] == 0
    assert not emulator.state.oauth.grants
    async with sessions() as session:
        assert (await session.get(Connection, TENANT)) is None
    refusals = await _refusals(sessions)
    assert [(r.tenant_id, r.reason) for r in refusals] == [(TENANT, "browser_mismatch")]
    audited = repr([r.details for r in refusals])
    for secret in (callback["state"], callback["code"], link.browser_binding, binding or "-"):
        assert secret not in audited
    # The link is spent: its own browser cannot finish it afterwards either.
    again = await stub.CompleteConnection(completion(callback, link.browser_binding))
    assert again.error_code == "state_already_used"


async def test_a_state_minted_before_bindings_existed_is_refused(
    integration_channel: grpc.aio.Channel, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    async with sessions.begin() as session:
        await session.execute(update(OAuthState).values(binding_hash=None))
    callback = await consent(link.authorize_url)
    reply = await stub.CompleteConnection(completion(callback, link.browser_binding))
    assert reply.error_code == "browser_mismatch"


OTHER_REALM = "9130350000000042"


async def _add_company(emulator: Emulator, realm_id: str, name: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{emulator.url}/_emulator/companies",
            json={"realm_id": realm_id, "name": name, "customers": 1, "invoices": 1},
        ) as resp,
    ):
        assert resp.status == 201, await resp.text()


@pytest.mark.parametrize("claimed", [OTHER_REALM, "1234567890"])
async def test_a_tampered_realm_is_refused_revoked_and_reserves_nothing(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
    claimed: str,
) -> None:
    """Consent for one company, then ``realmId`` edited to another company's id (or to an
    id that exists nowhere): QBO answers 403 for it with the new token."""
    await _add_company(emulator, OTHER_REALM, "Globex Holdings")
    await enable(integration_channel, "acme")
    await enable(integration_channel, "globex")
    stub = igrpc.IntegrationServiceStub(integration_channel)
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id="acme"))
    callback = await consent(link.authorize_url, realm=REALM_ID)
    reply = await stub.CompleteConnection(
        completion(callback, link.browser_binding, realm_id=claimed)
    )
    assert not reply.connected
    assert reply.error_reason == pb.CONNECT_ERROR_REASON_REALM_MISMATCH
    assert reason_of(reply.redirect_url) == ("error", "realm_mismatch")
    # The grant Intuit gave for the real company was revoked; nothing was stored.
    assert emulator.state.oauth.token_calls["authorization_code"] == 1
    assert emulator.state.oauth.grants
    assert all(g.revoked for g in emulator.state.oauth.grants.values())
    async with sessions() as session:
        assert (await session.execute(select(Connection))).scalars().all() == []
    refusals = await _refusals(sessions)
    assert [(r.tenant_id, r.reason) for r in refusals] == [("acme", "realm_mismatch")]
    assert refusals[0].details["claimed_realm_id"] == claimed
    # Nothing is reserved: the claimed company's real owner connects it normally.
    if claimed == OTHER_REALM:
        owner = await connect(integration_channel, "globex", OTHER_REALM)
        assert owner.connected
        assert owner.company_name == "Globex Holdings"


async def test_a_realm_that_cannot_be_verified_is_not_connected(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """QBO down while we read CompanyInfo: no unverified realm is stored; try again."""
    await enable(integration_channel)
    async with aiohttp.ClientSession() as http:
        await http.put(
            f"{emulator.url}/_emulator/faults",
            json={"scope": ["api"], "error_rate": 1.0, "error_status": 503},
        )
    reply = await connect(integration_channel)
    assert not reply.connected
    assert reason_of(reply.redirect_url) == ("error", "unavailable")
    assert all(g.revoked for g in emulator.state.oauth.grants.values())
    async with sessions() as session:
        assert (await session.get(Connection, TENANT)) is None
    async with aiohttp.ClientSession() as http:
        await http.delete(f"{emulator.url}/_emulator/faults")
    assert (await connect(integration_channel)).connected
