"""Fixtures of the webhook tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.rpc.client import internal_channel
from tests.conftest import INTERNAL_TOKEN, Emulator
from tests.helpers.connections import confirmed_before, connect
from tests.stack import Stack, enable_tenant, full_stack

TENANT = "acme"


@pytest_asyncio.fixture
async def stack(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Stack]:
    """The whole system in this process, tenant ``acme`` connected to the realm."""
    async with full_stack(engine, emulator) as s:
        await confirmed_before(s.deps.sessions, TENANT)  # past its first confirmation
        await enable_tenant(s, TENANT)
        async with internal_channel(s.integration_addr, INTERNAL_TOKEN) as channel:
            assert (await connect(channel, TENANT)).connected
        yield s
