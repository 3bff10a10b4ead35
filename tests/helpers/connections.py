"""Connecting a tenant to QuickBooks through the integration service, with the emulator's
headless consent (the shortcut a browser test does not take)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import grpc
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from services.integration.models import Connection, PlacementIntake
from tests.conftest import REALM_ID

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
    link = await stub.CreateConnectUrl(pb.CreateConnectUrlRequest(tenant_id=tenant))
    callback = await consent(link.authorize_url, realm=realm)
    return await stub.CompleteConnection(completion(callback, link.browser_binding))


def completion(
    callback: dict[str, str], browser_binding: str, **changes: str
) -> pb.CompleteConnectionRequest:
    """The CompleteConnection request of a callback query, as the gateway builds it."""
    request = pb.CompleteConnectionRequest(
        state=callback["state"],
        code=callback["code"],
        realm_id=callback["realmId"],
        browser_binding=browser_binding,
    )
    for name, value in changes.items():
        setattr(request, name, value)
    return request


async def expire_access_token(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(Connection).values(access_expires_at=text("now() - interval '1 second'"))
        )


async def confirmed_before(
    sessions: async_sessionmaker[AsyncSession], tenant: str = TENANT, provider: str = "qbo"
) -> None:
    """The tenant as it is after its first confirmation with future mode ``automatic``
    (newly selected invoices are placed without waiting): the state the sync-mechanics
    tests start from. The preview itself (staging, exclude, confirm) is exercised through
    the RPCs and the gateway in ``tests/services/integration/test_candidates.py``."""
    async with sessions.begin() as session:
        await session.merge(
            PlacementIntake(
                tenant_id=tenant,
                provider=provider,
                mode="automatic",
                confirmations=1,
                updated_by="tests: confirmed before",
            )
        )
