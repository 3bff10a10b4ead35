"""The gateway as the dashboard sees it, over the real matcher (in process): a test client
and a JWT for a tenant. The integration backend refuses every call."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.matching.v1 import matching_admin_service_pb2_grpc as agrpc
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from aicollect.rpc.client import internal_channel
from aicollect.settings import Settings
from gateway.app import create_app
from gateway.keys import Backends
from tests.conftest import INTERNAL_TOKEN
from tests.services.matcher.conftest import Matcher
from tests.stack import JWT_SECRET


def bearer(tenant_id: str) -> dict[str, str]:
    claims = {"sub": "jane@acme.test", "tenant_id": tenant_id, "exp": int(time.time()) + 600}
    return {"Authorization": "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")}


@pytest_asyncio.fixture
async def dashboard(
    matcher_addr: str, refused_addr: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[tuple[TestClient[Any, Any], Matcher]]:
    channel = internal_channel(matcher_addr, INTERNAL_TOKEN)
    backends = Backends(integration=internal_channel(refused_addr, INTERNAL_TOKEN), matcher=channel)
    settings = Settings.from_env(
        {"AICOLLECT_INTERNAL_TOKEN": INTERNAL_TOKEN, "AICOLLECT_JWT_SECRET": JWT_SECRET}
    )
    matcher = Matcher(
        pb_grpc.MatchingServiceStub(channel), agrpc.MatchingAdminServiceStub(channel), sessions
    )
    async with TestClient(TestServer(create_app(settings, backends=backends))) as client:
        yield client, matcher
    await backends.integration.close(None)
    await channel.close(None)
