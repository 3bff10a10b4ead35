"""Connect, callback, disconnect and status over gRPC, with the Intuit emulator on loopback."""

from __future__ import annotations

import asyncio
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

TENANT = "acme"


async def enable(channel: grpc.aio.Channel, tenant: str = TENANT) -> None:
    await agrpc.AdminServiceStub(channel).SetTenantSettings(
        apb.SetTenantSettingsRequest(
            tenant_id=tenant, qbo_enabled=True, actor="support", reason="beta"
        )
    )


async def consent(
    authorize_url: str, *, decision: str = "allow", realm: str = REALM_ID
) -> dict[str, str]:
    """Intuit's consent via the emulator's headless shortcut: the callback's query."""
    url = f"{authorize_url}&emulator_decision={decision}&emulator_realm={realm}"
    async with (
        aiohttp.ClientSession() as http,
        http.get(url, allow_redirects=False) as resp,
    ):
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def connect(
    channel: grpc.aio.Channel, tenant: str = TENANT, realm: str = REALM_ID
) -> pb.CompleteConnectionResponse:
    stub = igrpc.IntegrationServiceStub(channel)
    url = (await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=tenant))).authorize_url
    callback = await consent(url, realm=realm)
    return await stub.CompleteConnection(
        pb.CompleteConnectionRequest(
            state=callback["state"], code=callback["code"], realm_id=callback["realmId"]
        )
    )


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
    raw = await _dump_schema(sessions)
    assert query["state"] not in raw


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
    url = (await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))).authorize_url
    callback = mutate(await consent(url))
    reply = await stub.CompleteConnection(
        pb.CompleteConnectionRequest(
            state=callback.get("state", ""),
            code=callback.get("code", ""),
            realm_id=callback.get("realmId", ""),
            error=callback.get("error", ""),
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
    url = (await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))).authorize_url
    callback = await consent(url)
    request = pb.CompleteConnectionRequest(
        state=callback["state"], code=callback["code"], realm_id=callback["realmId"]
    )
    assert (await stub.CompleteConnection(request)).connected
    replay = await stub.CompleteConnection(request)
    assert replay.error_code == "state_already_used"

    url = (await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))).authorize_url
    callback = await consent(url)
    async with sessions.begin() as session:
        await session.execute(
            update(OAuthState)
            .where(OAuthState.consumed_at.is_(None))
            .values(expires_at=text("now() - interval '1 second'"))
        )
    expired = await stub.CompleteConnection(
        pb.CompleteConnectionRequest(
            state=callback["state"], code=callback["code"], realm_id=callback["realmId"]
        )
    )
    assert expired.error_code == "expired_state"


async def test_concurrent_callbacks_with_one_state_make_one_connection(
    integration_channel: grpc.aio.Channel,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    url = (await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))).authorize_url
    callback = await consent(url)
    request = pb.CompleteConnectionRequest(
        state=callback["state"], code=callback["code"], realm_id=callback["realmId"]
    )
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
    url = (await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))).authorize_url
    callback = await consent(url)
    replies: list[Any] = []
    request = pb.CompleteConnectionRequest(
        state=callback["state"], code=callback["code"], realm_id=callback["realmId"]
    )
    replies.append(await stub.CompleteConnection(request))
    replies.append(await stub.CompleteConnection(request))  # a refused replay
    replies.append(await stub.GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id=TENANT)))
    replies.append(await stub.Disconnect(pb.DisconnectRequest(tenant_id=TENANT)))
    grant = next(iter(emulator.state.oauth.grants.values()))
    secrets = [
        callback["state"],
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
