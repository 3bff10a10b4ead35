"""The creditor journey's system: `aicollect run`'s real processes (``running_stack``: the
Intuit emulator, the matcher, the integration service with its workers, the gateway serving
the reference page in local mode) on the test's PostgreSQL database, with the journey's
company in the emulator, tenant ``acme`` enabled and the matcher's outreach stream read as
the outreach service reads it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import jwt
from google.protobuf.field_mask_pb2 import FieldMask

from aicollect.integration.v1 import admin_service_pb2 as iapb
from aicollect.integration.v1 import admin_service_pb2_grpc as iagrpc
from aicollect.localstack import LocalStack, running_stack
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from tests.conftest import REALM_ID
from tests.e2e.pipeline import TENANT, Books, consume_outreach

COMPANY = "Acme Widgets LLC"


@dataclass
class Journey(Books):
    stack: LocalStack
    emulator_url: str
    matching: mgrpc.MatchingServiceAsyncStub
    events: list[mpb.OutreachEvent] = field(default_factory=list)

    @property
    def gateway_url(self) -> str:
        return self.stack.gateway_url

    @property
    def token(self) -> str:
        """The stack's internal token (support's, for grpcurl)."""
        return self.stack.env["AICOLLECT_INTERNAL_TOKEN"]

    def bearer(self, tenant_id: str, *, subject: str = "jane@acme.test") -> str:
        """A dashboard JWT, signed with the stack's generated secret."""
        claims = {"sub": subject, "tenant_id": tenant_id, "exp": int(time.time()) + 1800}
        return jwt.encode(claims, self.stack.env["AICOLLECT_JWT_SECRET"], algorithm="HS256")

    async def gateway(self, method: str, path: str, tenant_id: str = TENANT) -> Any:
        headers = {"Authorization": f"Bearer {self.bearer(tenant_id)}"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{self.gateway_url}{path}", headers=headers) as resp,
        ):
            assert resp.status == 200, await resp.text()
            return await resp.json()

    async def emulator(self, method: str, path: str, body: dict[str, Any] | None = None) -> None:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{self.emulator_url}/_emulator/{path}", json=body) as resp,
        ):
            assert resp.status in (200, 201), await resp.text()

    @property
    def xero_url(self) -> str:
        assert self.stack.xero_emulator_url is not None, "aicollect run started no Xero emulator"
        return self.stack.xero_emulator_url

    async def xero(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The Xero emulator's control API (``/_emulator/...``), as the bookkeeper acts in
        Xero."""
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, f"{self.xero_url}/_emulator/{path}", json=body) as resp,
        ):
            payload = await resp.json()
            assert resp.status in (200, 201), payload
            return payload

    async def enable(self, tenant_id: str, provider: str) -> None:
        """Support enables ``provider`` for the tenant (its ``<provider>_enabled`` flag)."""
        async with internal_channel(self.stack.integration_addr, self.token) as channel:
            await iagrpc.AdminServiceStub(channel).SetTenantSettings(
                iapb.SetTenantSettingsRequest(
                    tenant_id=tenant_id,
                    provider_enabled={provider: True},
                    actor="support",
                    reason="beta",
                )
            )

    async def kill_switch(self, *, on: bool, provider: str = "qbo") -> None:
        """Oncall turns one platform's kill switch (``provider_kill_switch.<provider>``)."""
        async with internal_channel(self.stack.integration_addr, self.token) as channel:
            await iagrpc.AdminServiceStub(channel).UpdatePlatformSettings(
                iapb.UpdatePlatformSettingsRequest(
                    settings=iapb.PlatformSettings(provider_kill_switch={provider: on}),
                    update_mask=FieldMask(paths=[f"provider_kill_switch.{provider}"]),
                    actor="oncall",
                    reason="walkthrough: an incident drill",
                )
            )

    def events_of(self, kind: int) -> list[mpb.OutreachEvent]:
        return [e for e in self.events if e.type == kind]


@asynccontextmanager
async def running_journey(database_url: str) -> AsyncIterator[Journey]:
    """The processes on ``database_url``; the emulator holds one company (5 customers, 14
    invoices, most of them overdue) and the app `aicollect run` registered (its consent
    screen returns to the gateway's page, its webhooks go to the gateway)."""
    async with running_stack(
        database_url=database_url, extra_env={"AICOLLECT_QBO_BACKOFF_BASE_SECONDS": "0.05"}
    ) as stack:
        assert stack.emulator_url is not None
        async with internal_channel(stack.matcher_addr, stack.env["AICOLLECT_INTERNAL_TOKEN"]) as m:
            journey = Journey(stack, stack.emulator_url, mgrpc.MatchingServiceStub(m))
            await journey.emulator(
                "POST",
                "companies",
                {
                    "realm_id": REALM_ID,
                    "name": COMPANY,
                    "customers": 5,
                    "invoices": 14,
                    "overdue_fraction": 0.6,
                },
            )
            async with internal_channel(stack.integration_addr, journey.token) as channel:
                await iagrpc.AdminServiceStub(channel).SetTenantSettings(
                    iapb.SetTenantSettingsRequest(
                        tenant_id=TENANT, qbo_enabled=True, actor="support", reason="beta"
                    )
                )
            consumer = asyncio.create_task(consume_outreach(journey))
            try:
                yield journey
            finally:
                consumer.cancel()
                await asyncio.gather(consumer, return_exceptions=True)
