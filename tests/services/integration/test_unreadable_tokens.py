"""Tokens sealed with a key the service no longer has (a key dropped from
AICOLLECT_TOKEN_KEYS before ``aicollect rotate-keys`` re-sealed them): one such row never
blocks the others, and every place that shows the connection or a pending revocation says
which key is missing, without a secret."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import pytest_asyncio
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.crypto import TokenCipher
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.rpc.errors import error_info
from services.integration.deps import IntegrationDeps
from services.integration.models import Connection, PendingRevocation
from services.integration.tokens import TokensUnreadable, revocation_identity, token_identity
from services.integration.workers import revocation_retrier
from tests.conftest import (
    REALM_ID,
    TOKEN_KEYS,
    Emulator,
)
from tests.helpers.connections import TENANT, connect, enable
from tests.helpers.replicas import replica

# The key the tokens were sealed with, since dropped from the service's configuration.
DROPPED_KEY = "k0:" + base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
dropped = TokenCipher.from_spec(DROPPED_KEY)


@pytest.fixture(autouse=True)
def _logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)


async def intuit_token_endpoint(emulator: Emulator, faults: dict[str, Any] | None) -> None:
    async with aiohttp.ClientSession() as http:
        if faults is None:
            await http.delete(f"{emulator.url}/_emulator/faults")
        else:
            await http.put(f"{emulator.url}/_emulator/faults", json=faults)


async def seal_with_dropped_key(sessions: async_sessionmaker[AsyncSession], cipher: Any) -> str:
    """Re-seals the tenant's stored tokens with the dropped key; returns the refresh token."""
    async with sessions.begin() as session:
        row = await session.get(Connection, TENANT, with_for_update=True)
        assert row is not None
        assert row.access_token is not None
        assert row.refresh_token is not None
        refresh = ""
        for kind in ("access", "refresh"):
            identity = token_identity(TENANT, REALM_ID, kind)
            plain = cipher.open(getattr(row, f"{kind}_token"), identity)
            setattr(row, f"{kind}_token", dropped.seal(plain, identity))
            refresh = plain
    return refresh


@pytest_asyncio.fixture
async def restored(
    database_url: str, emulator: Emulator, matcher_addr: str
) -> AsyncIterator[IntegrationDeps]:
    """A replica after an operator put the dropped key back (newest first, k0 kept)."""
    keys = f"{TOKEN_KEYS},{DROPPED_KEY}"
    async with replica(database_url, emulator.url, matcher_addr, AICOLLECT_TOKEN_KEYS=keys) as deps:
        yield deps


def no_secret_in_logs(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for secret in secrets:
        assert secret not in logged


async def test_one_unreadable_revocation_never_blocks_the_others(
    integration_channel: grpc.aio.Channel,
    integration_deps: IntegrationDeps,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = igrpc.IntegrationServiceStub(integration_channel)
    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    # acme disconnects while Intuit's token endpoint is down: its revocation is queued.
    await intuit_token_endpoint(
        emulator, {"scope": ["token"], "error_rate": 1.0, "error_status": 503}
    )
    reply = await stub.Disconnect(pb.DisconnectRequest(tenant_id=TENANT, actor="jane"))
    assert reply.token_revocation == pb.TOKEN_REVOCATION_PENDING_RETRY
    await intuit_token_endpoint(emulator, None)
    async with sessions.begin() as session:  # its backoff has passed: it is due again
        await session.execute(
            update(PendingRevocation).values(
                next_attempt_at=datetime.now(UTC) - timedelta(minutes=1)
            )
        )
    # Another tenant's revocation, queued long ago under a key since dropped, is due first.
    bravo_token = "bravo-refresh-token-0001"
    async with sessions.begin() as session:
        session.add(
            PendingRevocation(
                id="bravo-pending",
                tenant_id="bravo",
                realm_id="9130000000000002",
                token=dropped.seal(bravo_token, revocation_identity("bravo-pending")),
                attempts=4,
                last_error="",
                next_attempt_at=datetime.now(UTC) - timedelta(days=1),
            )
        )

    # The background retrier's round (the real worker, one round).
    stop = asyncio.Event()
    worker = asyncio.create_task(revocation_retrier(integration_deps.connections, stop))
    try:
        for _ in range(200):
            if all(g.revoked for g in emulator.state.oauth.grants.values()):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)

    # acme's grant was revoked at Intuit and its row is gone.
    assert all(g.revoked for g in emulator.state.oauth.grants.values())
    async with sessions() as session:
        rows = (await session.execute(select(PendingRevocation))).scalars().all()
    [bravo] = rows
    # bravo's row records the failure: attempts, the reason naming the key, a later retry.
    assert bravo.id == "bravo-pending"
    assert bravo.attempts == 5
    assert "'k0'" in bravo.last_error
    assert "AICOLLECT_TOKEN_KEYS" in bravo.last_error
    assert bravo.next_attempt_at > datetime.now(UTC)
    # ... and it is shown where the tenant's connection is shown.
    status = await stub.GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id="bravo"))
    [shown] = status.pending_revocations
    assert shown.realm_id == "9130000000000002"
    assert shown.attempts == 5
    assert shown.last_error == bravo.last_error
    assert shown.next_attempt_time.ToDatetime(UTC) == bravo.next_attempt_at
    acme = await stub.GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id=TENANT))
    assert not acme.pending_revocations
    # Logged with the key id, without the token.
    failures = [
        r for r in caplog.records if r.getMessage() == "token revocation failed; will retry"
    ]
    assert any(r.__dict__.get("tenant_id") == "bravo" for r in failures)
    assert any("'k0'" in str(r.__dict__.get("error")) for r in failures)
    no_secret_in_logs(caplog, bravo_token, bravo.token)


async def test_a_connection_with_unreadable_tokens_is_reported_and_sync_refused(
    integration_channel: grpc.aio.Channel,
    integration_deps: IntegrationDeps,
    restored: IntegrationDeps,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    stub = igrpc.IntegrationServiceStub(integration_channel)
    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    refresh = await seal_with_dropped_key(sessions, integration_deps.cipher)

    status = await stub.GetConnectionStatus(pb.GetConnectionStatusRequest(tenant_id=TENANT))
    assert status.state == pb.CONNECTION_STATE_TOKENS_UNREADABLE
    assert "'k0'" in status.state_detail
    assert status.realm_id == REALM_ID

    for mode in (pb.SYNC_MODE_FULL, pb.SYNC_MODE_INCREMENTAL):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.SyncNow(pb.SyncNowRequest(tenant_id=TENANT, mode=mode, actor="jane"))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "'k0'" in (refused.value.details() or "")
        info = error_info(refused.value)
        assert info is not None
        assert info.reason == "TOKENS_UNREADABLE"
        assert info.metadata["key_id"] == "k0"

    # Calls to Intuit stop with the same clear error (not an internal one).
    with pytest.raises(TokensUnreadable, match="'k0'"):
        await integration_deps.tokens.access_token(TENANT)

    # Putting the key back resumes the connection as it was.
    view = await restored.connections.status(TENANT)
    assert view.state == "connected"
    assert (await restored.tokens.access_token(TENANT)).realm_id == REALM_ID
    no_secret_in_logs(caplog, refresh)


async def test_disconnecting_a_connection_with_unreadable_tokens_queues_them_as_they_are(
    integration_channel: grpc.aio.Channel,
    integration_deps: IntegrationDeps,
    restored: IntegrationDeps,
    emulator: Emulator,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    stub = igrpc.IntegrationServiceStub(integration_channel)
    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    await seal_with_dropped_key(sessions, integration_deps.cipher)

    reply = await stub.Disconnect(pb.DisconnectRequest(tenant_id=TENANT, actor="jane"))
    assert reply.state == pb.CONNECTION_STATE_DISCONNECTED
    assert reply.token_revocation == pb.TOKEN_REVOCATION_PENDING_RETRY
    assert "'k0'" in reply.revocation_detail
    async with sessions() as session:
        row = await session.get(Connection, TENANT)
        assert row is not None
        assert (row.access_token, row.refresh_token) == (None, None)
        [pending] = (await session.execute(select(PendingRevocation))).scalars().all()
    assert "'k0'" in pending.last_error
    assert not any(g.revoked for g in emulator.state.oauth.grants.values())

    # Once the key is back, the retry revokes the grant at Intuit.
    done, _ = await restored.connections.retry_revocation(pending.id)
    assert done
    assert all(g.revoked for g in emulator.state.oauth.grants.values())


async def test_rotate_keys_re_seals_every_readable_row_and_names_the_others(
    integration_channel: grpc.aio.Channel,
    integration_deps: IntegrationDeps,
    emulator: Emulator,
    database_url: str,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await enable(integration_channel)
    assert (await connect(integration_channel)).connected
    # Another tenant's connection, in the same batch, sealed under the dropped key.
    bravo_realm, bravo_refresh = "9130000000000002", "bravo-refresh-token-0002"
    async with sessions.begin() as session:
        session.add(
            Connection(
                tenant_id="bravo",
                realm_id=bravo_realm,
                state="connected",
                access_token=dropped.seal(
                    "bravo-access", token_identity("bravo", bravo_realm, "access")
                ),
                refresh_token=dropped.seal(
                    bravo_refresh, token_identity("bravo", bravo_realm, "refresh")
                ),
                token_generation=1,
            )
        )
    new_key = "k2:" + base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    result = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).parent / "aicollect"), "rotate-keys"],
        env={
            "PATH": os.environ.get("PATH", ""),
            "AICOLLECT_DATABASE_URL": database_url,
            "AICOLLECT_TOKEN_KEYS": f"{new_key},{TOKEN_KEYS}",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # acme's tokens are re-sealed; bravo's are named (tenant, key id) and left as they are.
    assert result.returncode == 1, result.stderr
    assert "2 connection token(s)" in result.stdout
    assert "tenant 'bravo'" in result.stderr
    assert "'k0'" in result.stderr
    assert bravo_refresh not in result.stdout + result.stderr
    async with sessions() as session:
        acme = await session.get(Connection, TENANT)
        bravo = await session.get(Connection, "bravo")
    assert acme is not None
    assert acme.refresh_token is not None
    assert acme.refresh_token.startswith("k2:")
    assert bravo is not None
    assert bravo.refresh_token is not None
    assert bravo.refresh_token.startswith("k0:")
