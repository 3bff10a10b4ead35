"""Shared fixtures: a real PostgreSQL server, a migrated template database, fresh databases.

The server is ``AICOLLECT_TEST_DATABASE_URL`` when set (CI sets it), else an embedded one
started for the session. An unreachable server fails the run; it is never skipped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.db.embedded import EmbeddedPostgres
from aicollect.db.engine import make_engine, make_sessionmaker
from aicollect.db.migrate import upgrade


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _admin(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(_dsn(url), timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("AICOLLECT_TEST_DATABASE_URL")
    if configured:
        try:
            asyncio.run(_admin(configured, "SELECT 1"))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            pytest.fail(
                f"AICOLLECT_TEST_DATABASE_URL is set but PostgreSQL is unreachable: {exc!r}",
                pytrace=False,
            )
        yield configured
        return
    data_dir: Path = tmp_path_factory.mktemp("embedded-pg")
    server = EmbeddedPostgres(data_dir)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    """A database migrated once per session; each test clones it (fast, isolated)."""
    name = f"aicollect_tpl_{os.getpid()}"
    asyncio.run(
        _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    )
    upgrade(_with_database(pg_server_url, name))
    yield name
    asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture
async def database_url(pg_server_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh, migrated database for one test."""
    name = f"aicollect_t_{uuid.uuid4().hex[:12]}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    try:
        yield _with_database(pg_server_url, name)
    finally:
        await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url, pool_size=5)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


INTERNAL_TOKEN = "test-internal-token"


@pytest_asyncio.fixture
async def matcher_addr(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[str]:
    """The matcher's gRPC server, in process on a free port."""
    from services.matcher.server import build_server

    server = build_server(sessions, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(None)


@pytest_asyncio.fixture
async def integration_addr(
    sessions: async_sessionmaker[AsyncSession], matcher_addr: str
) -> AsyncIterator[str]:
    """The integration service's gRPC server, in process, wired to the matcher above."""
    from aicollect.rpc.client import internal_channel
    from services.integration.server import build_server

    matcher = internal_channel(matcher_addr, INTERNAL_TOKEN)
    server = build_server(sessions, matcher, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(None)
        await matcher.close(None)


@pytest_asyncio.fixture
async def integration_channel(integration_addr: str) -> AsyncIterator[Any]:
    from aicollect.rpc.client import internal_channel

    channel = internal_channel(integration_addr, INTERNAL_TOKEN)
    try:
        yield channel
    finally:
        await channel.close(None)
