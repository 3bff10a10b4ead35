"""Access-token refresh: once at a time across processes, rotation persisted, re-auth on
``invalid_grant``, Intuit-side disconnects detected on the next call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.db.engine import make_engine
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.rpc.client import internal_channel
from services.integration.deps import IntegrationDeps
from services.integration.models import Connection
from services.integration.tokens import KillSwitchOn, ReauthorizationRequired, token_identity
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator, integration_settings, qbo_api
from tests.helpers.connections import TENANT, connect, expire_access_token


@pytest_asyncio.fixture
async def second_process(
    database_url: str, emulator: Emulator, matcher_addr: str
) -> AsyncIterator[IntegrationDeps]:
    """A second integration process: its own engine, HTTP session and token manager."""
    engine = make_engine(database_url, pool_size=5)
    matcher = internal_channel(matcher_addr, INTERNAL_TOKEN)
    async with aiohttp.ClientSession() as http:
        yield IntegrationDeps.create(integration_settings(emulator.url), engine, http, matcher)
    await matcher.close(None)
    await engine.dispose()


def _grant(emulator: Emulator) -> Any:
    return next(g for g in emulator.state.oauth.grants.values() if g.realm_id == REALM_ID)


async def test_fifty_concurrent_callers_cause_one_refresh(
    connected: grpc.aio.Channel,
    integration_deps: IntegrationDeps,
    second_process: IntegrationDeps,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await expire_access_token(sessions)
    before = emulator.state.oauth.token_calls["refresh_token"]
    managers = [integration_deps.tokens, second_process.tokens]
    tokens = await asyncio.gather(*(managers[i % 2].access_token(TENANT) for i in range(50)))
    assert emulator.state.oauth.token_calls["refresh_token"] - before == 1
    assert len({t.token for t in tokens}) == 1
    grant = _grant(emulator)
    assert tokens[0].token in grant.access_tokens
    # The rotated refresh token was persisted: what we hold is what Intuit holds now.
    async with sessions() as session:
        row = await session.get(Connection, TENANT)
        assert row is not None
        assert row.refresh_token is not None
        stored = integration_deps.cipher.open(
            row.refresh_token, token_identity(TENANT, REALM_ID, "refresh")
        )
    assert stored == grant.refresh_token
    # And it keeps working: a later refresh with the stored token succeeds.
    await expire_access_token(sessions)
    again = await second_process.tokens.access_token(TENANT)
    assert again.token != tokens[0].token


async def test_refresh_records_the_hard_expiry(
    connected: grpc.aio.Channel,
    integration_deps: IntegrationDeps,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await expire_access_token(sessions)
    await integration_deps.tokens.access_token(TENANT)
    status = await igrpc.IntegrationServiceStub(connected).GetConnectionStatus(
        pb.GetConnectionStatusRequest(tenant_id=TENANT)
    )
    assert status.HasField("refresh_token_expire_time")
    years = (status.refresh_token_expire_time.seconds - status.connect_time.seconds) / 86400 / 365
    assert 4.9 < years < 5.1  # Intuit's 5-year maximum


async def test_a_401_triggers_one_refresh_and_the_call_succeeds(
    connected: grpc.aio.Channel, integration_deps: IntegrationDeps, emulator: Emulator
) -> None:
    # Intuit's clock moves past the access token's hour; our copy still looks valid.
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.url}/_emulator/clock", json={"advance_seconds": 3700}) as resp,
    ):
        assert resp.status == 200
    before = emulator.state.oauth.token_calls["refresh_token"]
    info = await integration_deps.caller.call(TENANT, qbo_api(integration_deps).company_info)
    assert info["CompanyName"] == "Acme Widgets LLC"
    assert emulator.state.oauth.token_calls["refresh_token"] - before == 1


async def test_intuit_side_disconnect_is_detected_on_the_next_call(
    connected: grpc.aio.Channel, integration_deps: IntegrationDeps, emulator: Emulator
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.url}/_emulator/companies/{REALM_ID}/disconnect", json={}) as resp,
    ):
        assert resp.status == 200
    with pytest.raises(ReauthorizationRequired):
        await integration_deps.caller.call(TENANT, qbo_api(integration_deps).company_info)
    status = await igrpc.IntegrationServiceStub(connected).GetConnectionStatus(
        pb.GetConnectionStatusRequest(tenant_id=TENANT)
    )
    assert status.state == pb.CONNECTION_STATE_NEEDS_REAUTHORIZATION
    assert status.disconnect_origin == pb.DISCONNECT_ORIGIN_INTUIT
    assert "Reconnect" in status.state_detail
    # Every call for the connection stops: no further request reaches Intuit.
    calls = sum(emulator.state.oauth.token_calls.values())
    api_calls = sum(emulator.state.api_requests.values())
    with pytest.raises(ReauthorizationRequired):
        await integration_deps.caller.call(TENANT, qbo_api(integration_deps).company_info)
    assert sum(emulator.state.oauth.token_calls.values()) == calls
    assert sum(emulator.state.api_requests.values()) == api_calls
    # Reconnecting the same company works.
    assert (await connect(connected)).connected


async def test_kill_switch_stops_token_use(
    connected: grpc.aio.Channel, integration_deps: IntegrationDeps, emulator: Emulator
) -> None:
    from services.integration import admin

    async with integration_deps.sessions.begin() as session:
        await admin.update_platform_settings(
            session, {"qbo_kill_switch": True}, actor="oncall", reason="drill"
        )
    before = sum(emulator.state.api_requests.values())
    with pytest.raises(KillSwitchOn):
        await integration_deps.caller.call(TENANT, qbo_api(integration_deps).company_info)
    assert sum(emulator.state.api_requests.values()) == before


async def test_rotate_keys_reseals_every_token_under_the_newest_key(
    connected: grpc.aio.Channel,
    integration_deps: IntegrationDeps,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
    emulator: Emulator,
) -> None:
    import base64
    import os
    import subprocess
    import sys
    from pathlib import Path

    from aicollect.crypto import TokenCipher
    from tests.conftest import TOKEN_KEYS

    new_key = "k2:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AICOLLECT_DATABASE_URL": database_url,
        "AICOLLECT_TOKEN_KEYS": f"{new_key},{TOKEN_KEYS}",
    }
    result = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "aicollect"), "rotate-keys"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "2 connection token(s)" in result.stdout
    only_new = TokenCipher.from_spec(new_key)
    async with sessions() as session:
        row = await session.get(Connection, TENANT)
        assert row is not None
        assert row.refresh_token is not None
        assert only_new.key_id_of(row.refresh_token) == "k2"
        refresh = only_new.open(row.refresh_token, token_identity(TENANT, REALM_ID, "refresh"))
    assert refresh == _grant(emulator).refresh_token
    again = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "aicollect"), "rotate-keys"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "0 connection token(s)" in again.stdout
    assert "2 already current" in again.stdout
