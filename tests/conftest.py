"""Shared fixtures: a real PostgreSQL server, a migrated template database, fresh databases.

The server is ``AICOLLECT_TEST_DATABASE_URL`` when set (CI sets it), else an embedded one
started for the session. An unreachable server fails the run; it is never skipped.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.db.embedded import EmbeddedPostgres
from aicollect.db.engine import make_engine, make_sessionmaker
from aicollect.db.migrate import upgrade
from aicollect.settings import Settings
from emulators.qbo.app import create_app as create_emulator
from emulators.qbo.config import AppConfig, CompanySpec, EmulatorConfig
from emulators.qbo.keys import STATE_KEY as EMULATOR_STATE
from emulators.qbo.state import EmulatorState
from tests.helpers.ports import refused_address


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
async def browser() -> AsyncIterator[Any]:
    """Headless Chromium (Debian's package) driven by Playwright: a ``Browser``."""
    from tests.helpers.browser import chromium  # Playwright only where a test needs it

    async with chromium() as instance:
        yield instance


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
CLIENT_ID = "ABtestclient0001"
CLIENT_SECRET = "test-client-secret-value-0001"
VERIFIER_TOKEN = "test-verifier-token-0001"
REDIRECT_URI = "http://127.0.0.1:8080/v1/integrations/qbo/callback"
DASHBOARD_URL = "https://app.ai-collect.test/settings/integrations/qbo"
REALM_ID = "4620816365000001"
TOKEN_KEYS = "k1:" + "A" * 43  # 32 zero-ish bytes, base64url; tests only


@dataclass
class Emulator:
    """A running emulator: its base URL and its in-memory state."""

    url: str
    state: EmulatorState
    app: web.Application


@asynccontextmanager
async def running_emulator(
    company: CompanySpec, *, webhook_url: str | None = None
) -> AsyncIterator[Emulator]:
    """The Intuit emulator on a free loopback port, with our app and ``company``."""
    config = EmulatorConfig(
        port=0,
        apps=[
            AppConfig(
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                redirect_uris=[REDIRECT_URI],
                verifier_token=VERIFIER_TOKEN,
                webhook_url=webhook_url,
            )
        ],
        companies=[company],
    )
    app = create_emulator(config)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield Emulator(str(server.make_url("")).rstrip("/"), app[EMULATOR_STATE], app)
    finally:
        await server.close()


@pytest_asyncio.fixture
async def emulator() -> AsyncIterator[Emulator]:
    """The emulator with one small company."""
    company = CompanySpec(realm_id=REALM_ID, name="Acme Widgets LLC", customers=3, invoices=6)
    async with running_emulator(company) as running:
        yield running


def integration_settings(emulator_url: str, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "AICOLLECT_INTERNAL_TOKEN": INTERNAL_TOKEN,
            "AICOLLECT_TOKEN_KEYS": TOKEN_KEYS,
            "AICOLLECT_DASHBOARD_URL": DASHBOARD_URL,
            "QBO_CLIENT_ID": CLIENT_ID,
            "QBO_CLIENT_SECRET": CLIENT_SECRET,
            "QBO_REDIRECT_URI": REDIRECT_URI,
            "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER_TOKEN,
            "QBO_DISCOVERY_URL": f"{emulator_url}/.well-known/openid_configuration",
            "QBO_API_BASE_URL": emulator_url,
            "AICOLLECT_QBO_BACKOFF_BASE_SECONDS": "0.01",
            **extra,
        }
    )


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
async def integration_deps(
    engine: AsyncEngine, emulator: Emulator, matcher_addr: str
) -> AsyncIterator[Any]:
    """The integration process's dependencies: the emulator over HTTP, the matcher over gRPC."""
    from aicollect.rpc.client import internal_channel
    from services.integration.deps import IntegrationDeps

    matcher = internal_channel(matcher_addr, INTERNAL_TOKEN)
    async with aiohttp.ClientSession() as http:
        deps = IntegrationDeps.create(integration_settings(emulator.url), engine, http, matcher)
        yield deps
        await deps.inbox_writer.close()
    await matcher.close(None)


@pytest_asyncio.fixture
async def integration_addr(integration_deps: Any) -> AsyncIterator[str]:
    """The integration service's gRPC server, in process, wired to the matcher above."""
    from services.integration.server import build_server

    server = build_server(integration_deps, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
    await server.start()
    try:
        yield f"127.0.0.1:{server.port}"
    finally:
        await server.stop(None)


@pytest_asyncio.fixture
async def integration_channel(integration_addr: str) -> AsyncIterator[Any]:
    from aicollect.rpc.client import internal_channel

    channel = internal_channel(integration_addr, INTERNAL_TOKEN)
    try:
        yield channel
    finally:
        await channel.close(None)


def qbo_api(deps: Any) -> Any:
    """The QBO API client of an ``IntegrationDeps`` (its QuickBooks platform's)."""
    from services.integration.providers.qbo.platform import QboPlatform

    platform = deps.platforms.platform_for("qbo")
    assert isinstance(platform, QboPlatform)
    return platform.api


@pytest.fixture
def refused_addr() -> Iterator[str]:
    """``127.0.0.1:<port>`` where every connection is refused (held for the whole test)."""
    with refused_address() as addr:
        yield addr


@pytest_asyncio.fixture
async def connected(integration_channel: Any) -> Any:
    """The integration channel, with tenant ``acme`` enabled and connected to the realm."""
    from tests.helpers.connections import connect, enable  # (it imports this module)

    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    return integration_channel
