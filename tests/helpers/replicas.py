"""More integration replicas against the test database, with PostgreSQL's
``idle_in_transaction_session_timeout`` lowered to 1 s: a lock held inside a transaction
would be ended by PostgreSQL within the test.

A test module that imports ``engine`` from here replaces the default ``engine`` fixture
with this one (replica one's engine, timeout lowered)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.db.engine import make_engine
from aicollect.rpc.client import internal_channel
from services.integration.deps import IntegrationDeps
from tests.conftest import INTERNAL_TOKEN, integration_settings

IDLE_TIMEOUT = {"idle_in_transaction_session_timeout": "1000"}  # ms


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """Replica one's engine, with the lowered timeout."""
    eng = make_engine(database_url, pool_size=5, server_settings=IDLE_TIMEOUT)
    try:
        yield eng
    finally:
        await eng.dispose()


@asynccontextmanager
async def replica(
    database_url: str, emulator_url: str, matcher_addr: str, **env: str
) -> AsyncIterator[IntegrationDeps]:
    """One more integration replica: its own engine (timeout lowered), HTTP and tokens."""
    engine = make_engine(database_url, pool_size=5, server_settings=IDLE_TIMEOUT)
    matcher = internal_channel(matcher_addr, INTERNAL_TOKEN)
    try:
        async with aiohttp.ClientSession() as http:
            settings = integration_settings(emulator_url, **env)
            yield IntegrationDeps.create(settings, engine, http, matcher)
    finally:
        await matcher.close(None)
        await engine.dispose()
