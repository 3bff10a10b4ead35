"""The provider at the edges: RPCs, gateway paths and admin settings name the platform.

QBO and Xero are the supported providers; unspecified means QBO; any other provider is
refused clearly (INVALID_ARGUMENT naming ``provider`` over gRPC, 404 at the gateway).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import grpc
import pytest
import pytest_asyncio
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.provider import Provider
from aicollect.rpc.errors import error_info
from gateway.routes import binding_cookie, callback_path
from services.integration.models import AuditEvent, Connection, OAuthState
from tests.conftest import Emulator
from tests.helpers.connections import TENANT, completion, connect, consent, enable
from tests.stack import Stack, enable_tenant, full_stack

# A provider value this deployment does not know (a newer client's, say).
XERO = pb.Provider.ValueType(7)


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Stack]:
    async with full_stack(engine, emulator) as s:
        yield s


def _refused_for_provider(exc: grpc.aio.AioRpcError) -> None:
    assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
    info = error_info(exc)
    assert info is not None
    assert info.metadata["field"] == "provider"
    assert "7" in (exc.details() or "")  # names the value it does not know


RPCS: list[tuple[str, Callable[[igrpc.IntegrationServiceAsyncStub], Awaitable[Any]]]] = [
    (
        "CreateConnectUrl",
        lambda s: s.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT, provider=XERO)),
    ),
    (
        "CompleteConnection",
        lambda s: s.CompleteConnection(
            pb.CompleteConnectionRequest(state="s", code="c", realm_id="1", provider=XERO)
        ),
    ),
    (
        "Disconnect",
        lambda s: s.Disconnect(pb.DisconnectRequest(tenant_id=TENANT, actor="a", provider=XERO)),
    ),
    (
        "GetConnectionStatus",
        lambda s: s.GetConnectionStatus(
            pb.GetConnectionStatusRequest(tenant_id=TENANT, provider=XERO)
        ),
    ),
    (
        "IngestWebhook",
        lambda s: s.IngestWebhook(pb.IngestWebhookRequest(body=b"[]", provider=XERO)),
    ),
    (
        "SyncNow",
        lambda s: s.SyncNow(pb.SyncNowRequest(tenant_id=TENANT, provider=XERO)),
    ),
    (
        "PreviewPlacements",
        lambda s: s.PreviewPlacements(pb.PreviewPlacementsRequest(tenant_id=TENANT, provider=XERO)),
    ),
    (
        "GetPlacementRules",
        lambda s: s.GetPlacementRules(pb.GetPlacementRulesRequest(tenant_id=TENANT, provider=XERO)),
    ),
    (
        "SetPlacementRules",
        lambda s: s.SetPlacementRules(
            pb.SetPlacementRulesRequest(
                tenant_id=TENANT, rules=pb.PlacementRules(), actor="a", reason="r", provider=XERO
            )
        ),
    ),
]


@pytest.mark.parametrize(("rpc", "call"), RPCS, ids=[name for name, _ in RPCS])
async def test_an_unsupported_provider_is_refused_naming_provider_and_changes_nothing(
    integration_channel: grpc.aio.Channel,
    sessions: async_sessionmaker[AsyncSession],
    rpc: str,
    call: Callable[[igrpc.IntegrationServiceAsyncStub], Awaitable[Any]],
) -> None:
    await enable(integration_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call(igrpc.IntegrationServiceStub(integration_channel))
    _refused_for_provider(info.value)
    async with sessions() as session:
        assert (await session.execute(select(OAuthState))).first() is None
        audited = (await session.execute(select(AuditEvent.action))).scalars().all()
    assert audited == ["tenant.qbo_enabled.changed"]  # only the enabling above


async def test_unspecified_and_qbo_are_the_same_connection(
    integration_channel: grpc.aio.Channel, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    reply = await connect(integration_channel)  # no provider given: QBO
    assert reply.connected, reply
    assert parse_qs(urlsplit(reply.redirect_url).query)["qbo"] == ["connected"]
    async with sessions() as session:
        row = await session.get(Connection, TENANT)
    assert row is not None
    assert row.provider == "qbo"
    for provider in (pb.PROVIDER_UNSPECIFIED, pb.PROVIDER_QBO):
        status = await stub.GetConnectionStatus(
            pb.GetConnectionStatusRequest(tenant_id=TENANT, provider=provider)
        )
        assert status.state == pb.CONNECTION_STATE_CONNECTED
        assert status.provider == pb.PROVIDER_QBO
        assert (status.enabled, status.qbo_enabled) == (True, True)
        assert (status.kill_switch, status.qbo_kill_switch) == (False, False)
    done = await stub.Disconnect(
        pb.DisconnectRequest(tenant_id=TENANT, actor="jane", provider=pb.PROVIDER_QBO)
    )
    assert done.state == pb.CONNECTION_STATE_DISCONNECTED


async def test_a_state_completes_only_the_provider_it_was_minted_for(
    integration_channel: grpc.aio.Channel, integration_deps: Any
) -> None:
    """Another provider's callback presenting a QBO state gets ``?xero=error`` (its own
    dashboard parameter), and the state is not spent: QBO's callback still completes."""
    await enable(integration_channel)
    stub = igrpc.IntegrationServiceStub(integration_channel)
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=TENANT))
    callback = await consent(link.authorize_url)
    foreign = await integration_deps.connections.complete_connection(
        state=callback["state"],
        code=callback["code"],
        realm_id=callback["realmId"],
        error="",
        error_description="",
        browser_binding=link.browser_binding,
        provider=Provider.XERO,
    )
    assert not foreign.connected
    query = parse_qs(urlsplit(foreign.redirect_url).query)
    assert (query["xero"], query["reason"]) == (["error"], ["invalid_state"])
    assert "qbo" not in query
    reply = await stub.CompleteConnection(completion(callback, link.browser_binding))
    assert reply.connected, reply


# -- gateway ------------------------------------------------------------------------------

UNKNOWN_ROUTES = [
    ("POST", "/v1/integrations/{p}/connect-url"),
    ("GET", "/v1/integrations/{p}/callback?state=s&code=c&realmId=1"),
    ("GET", "/v1/integrations/{p}"),
    ("DELETE", "/v1/integrations/{p}"),
    ("POST", "/v1/webhooks/{p}"),
]


@pytest.mark.parametrize("name", ["netsuite", "sage", "QBO", "Xero"])
async def test_the_gateway_answers_404_for_a_provider_it_does_not_serve(
    stack: Stack, name: str
) -> None:
    await enable_tenant(stack, "acme")
    async with aiohttp.ClientSession() as http:
        for method, path in UNKNOWN_ROUTES:
            async with http.request(
                method,
                stack.gateway_url + path.format(p=name),
                headers={"Authorization": stack.bearer("acme")},
                allow_redirects=False,
            ) as resp:
                assert resp.status == 404, (method, path)
                body = await resp.json()
                assert "Set-Cookie" not in resp.headers
            assert body["error"]["reason"] == "UNKNOWN_PROVIDER"
            assert repr(name) in body["error"]["message"]
            assert "supported: qbo, xero" in body["error"]["message"]
    async with stack.deps.sessions() as session:
        assert (await session.execute(select(OAuthState))).first() is None


async def test_the_qbo_binding_cookie_is_scoped_to_qbos_callback_path(stack: Stack) -> None:
    await enable_tenant(stack, "acme")
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{stack.gateway_url}/v1/integrations/qbo/connect-url",
            headers={"Authorization": stack.bearer("acme")},
        ) as resp,
    ):
        assert resp.status == 200
        cookies = SimpleCookie(resp.headers["Set-Cookie"])
    assert list(cookies) == ["aicollect_qbo_binding"]
    assert cookies["aicollect_qbo_binding"]["path"] == "/v1/integrations/qbo/callback"


def test_each_provider_has_its_own_callback_path_and_cookie() -> None:
    assert callback_path(Provider.XERO) == "/v1/integrations/xero/callback"
    assert binding_cookie(Provider.XERO) == "aicollect_xero_binding"
    assert binding_cookie(Provider.QBO) != binding_cookie(Provider.XERO)


# -- admin --------------------------------------------------------------------------------


async def test_tenant_flags_per_provider_read_and_write_as_qbo_enabled(
    integration_channel: grpc.aio.Channel,
) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    got = (await stub.GetTenantSettings(apb.GetTenantSettingsRequest(tenant_id="t1"))).settings
    assert dict(got.provider_enabled) == {"qbo": False, "xero": False}
    reply = await stub.SetTenantSettings(
        apb.SetTenantSettingsRequest(
            tenant_id="t1", provider_enabled={"qbo": True}, actor="support", reason="pilot"
        )
    )
    assert reply.settings.qbo_enabled is True
    assert dict(reply.settings.provider_enabled) == {"qbo": True, "xero": False}
    reply = await stub.SetTenantSettings(
        apb.SetTenantSettingsRequest(
            tenant_id="t1", provider_enabled={"xero": True}, actor="support", reason="xero pilot"
        )
    )
    assert dict(reply.settings.provider_enabled) == {"qbo": True, "xero": True}
    # The old field alone still sets QBO's flag (and only QBO's).
    reply = await stub.SetTenantSettings(
        apb.SetTenantSettingsRequest(tenant_id="t1", qbo_enabled=False, actor="s", reason="end")
    )
    assert dict(reply.settings.provider_enabled) == {"qbo": False, "xero": True}
    events = (
        await stub.ListSettingsAuditEvents(
            apb.ListSettingsAuditEventsRequest(tenant_id="t1", setting="qbo_enabled")
        )
    ).events
    assert [(e.old_value, e.new_value, e.reason) for e in events] == [
        ("true", "false", "end"),
        ("false", "true", "pilot"),
    ]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (
            apb.SetTenantSettingsRequest(
                tenant_id="t1", provider_enabled={"sage": True}, actor="s", reason="r"
            ),
            "provider",
        ),
        (
            apb.SetTenantSettingsRequest(
                tenant_id="t1",
                qbo_enabled=True,
                provider_enabled={"qbo": False},
                actor="s",
                reason="r",
            ),
            "qbo_enabled",
        ),
    ],
    ids=["unsupported-provider", "contradiction"],
)
async def test_bad_tenant_provider_flags_are_refused_and_change_nothing(
    integration_channel: grpc.aio.Channel, request_: apb.SetTenantSettingsRequest, field: str
) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SetTenantSettings(request_)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_info(info.value)
    assert detail is not None
    assert detail.metadata["field"] == field
    got = (await stub.GetTenantSettings(apb.GetTenantSettingsRequest(tenant_id="t1"))).settings
    assert dict(got.provider_enabled) == {"qbo": False, "xero": False}
    events = await stub.ListSettingsAuditEvents(apb.ListSettingsAuditEventsRequest())
    assert list(events.events) == []


async def test_a_providers_kill_switch_is_qbo_kill_switch_for_qbo(
    integration_channel: grpc.aio.Channel,
) -> None:
    await enable(integration_channel)
    admin_stub = agrpc.AdminServiceStub(integration_channel)
    reply = await admin_stub.UpdatePlatformSettings(
        apb.UpdatePlatformSettingsRequest(
            settings=apb.PlatformSettings(provider_kill_switch={"qbo": True}),
            update_mask=FieldMask(paths=["provider_kill_switch.qbo"]),
            actor="oncall",
            reason="incident 7",
        )
    )
    assert reply.settings.qbo_kill_switch is True
    assert dict(reply.settings.provider_kill_switch) == {"qbo": True, "xero": False}
    # The one check takes the provider: QBO's connect is refused by QBO's switch.
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await igrpc.IntegrationServiceStub(integration_channel).CreateConnectUrl(
            pb.CreateConnectUrlRequest(tenant_id=TENANT, provider=pb.PROVIDER_QBO)
        )
    detail = error_info(info.value)
    assert detail is not None
    assert detail.reason == "KILL_SWITCH_ON"
    assert "qbo_kill_switch" in (info.value.details() or "")
    events = (
        await admin_stub.ListSettingsAuditEvents(
            apb.ListSettingsAuditEventsRequest(setting="qbo_kill_switch")
        )
    ).events
    assert [(e.new_value, e.reason) for e in events] == [("true", "incident 7")]


@pytest.mark.parametrize(
    ("paths", "settings", "field"),
    [
        (["provider_kill_switch.sage"], {"provider_kill_switch": {"sage": True}}, "provider"),
        (
            ["qbo_kill_switch", "provider_kill_switch.qbo"],
            {"qbo_kill_switch": True, "provider_kill_switch": {"qbo": False}},
            "provider_kill_switch.qbo",
        ),
        (["provider_kill_switch"], {}, "update_mask"),
    ],
    ids=["unsupported-provider", "contradiction", "whole-map"],
)
async def test_bad_kill_switch_updates_are_refused_and_change_nothing(
    integration_channel: grpc.aio.Channel, paths: list[str], settings: dict[str, Any], field: str
) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.UpdatePlatformSettings(
            apb.UpdatePlatformSettingsRequest(
                settings=apb.PlatformSettings(**settings),
                update_mask=FieldMask(paths=paths),
                actor="oncall",
                reason="r",
            )
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_info(info.value)
    assert detail is not None
    assert detail.metadata["field"] == field
    now = (await stub.GetPlatformSettings(apb.GetPlatformSettingsRequest())).settings
    assert dict(now.provider_kill_switch) == {"qbo": False, "xero": False}
    assert (
        list((await stub.ListSettingsAuditEvents(apb.ListSettingsAuditEventsRequest())).events)
        == []
    )
