"""The webhook endpoint and the durable inbox: stored before 200, duplicates recognised,
nothing stored without a valid signature, retries, dead letters, replay, replicas."""

from __future__ import annotations

import asyncio
import io
import json
from collections import Counter
from typing import Any

import aiohttp
import grpc
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.rpc.client import internal_channel
from emulators.qbo.config import CompanySpec
from services.integration import admin
from services.integration.inbox import InboxProcessor
from services.integration.models import InboxEvent
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator
from tests.helpers.connections import connect
from tests.helpers.webhooks import cloud_events, sign
from tests.stack import Stack, enable_tenant

TENANT = "acme"


async def post(
    stack: Stack, body: bytes, signature: str | None, content_type: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    data: Any = io.BytesIO(body) if len(body) > 1024 * 1024 else body
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers["intuit-signature"] = signature
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{stack.gateway_url}/v1/webhooks/qbo", data=data, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def inbox_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(
            (await session.execute(select(func.count()).select_from(InboxEvent))).scalar_one()
        )


async def test_signed_events_are_stored_before_200_and_duplicates_recognised(
    stack: Stack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = cloud_events(("Payment", "101", "created"), ("Invoice", "7", "updated"))
    status, reply = await post(stack, body, sign(body), "application/cloudevents+json")
    assert status == 200
    assert reply == {"stored": 2, "duplicates": 0, "dropped": 0}
    assert await inbox_count(sessions) == 2
    # Intuit retries the same delivery: recognised, not stored again.
    status, reply = await post(stack, body, sign(body), "application/cloudevents+json")
    assert (status, reply["stored"], reply["duplicates"]) == (200, 0, 2)
    # The same change with a new CloudEvents id (realm, entity, id, time, op) is a duplicate.
    again = json.loads(body)
    again[0]["id"] = "a-new-id"
    raw = json.dumps(again[:1]).encode()
    status, reply = await post(stack, raw, sign(raw))
    assert (status, reply["duplicates"]) == (200, 1)
    assert await inbox_count(sessions) == 2


async def test_legacy_format_and_previous_verifier_token(
    stack: Stack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = json.dumps(
        {
            "eventNotifications": [
                {
                    "realmId": REALM_ID,
                    "dataChangeEvent": {
                        "entities": [
                            {
                                "name": "Invoice",
                                "id": "3",
                                "operation": "Void",
                                "lastUpdated": "2026-11-25T02:42:19-0700",
                            }
                        ]
                    },
                }
            ]
        }
    ).encode()
    status, reply = await post(stack, body, sign(body))
    assert (status, reply["stored"]) == (200, 1)
    async with sessions() as session:
        event = (await session.execute(select(InboxEvent))).scalar_one()
    assert (event.entity, event.entity_id, event.operation) == ("Invoice", "3", "Void")


@pytest.mark.parametrize(
    ("signature", "body", "expected"),
    [
        (None, cloud_events(("Payment", "1", "created")), 401),
        ("", cloud_events(("Payment", "1", "created")), 401),
        ("bm90IGEgc2lnbmF0dXJl", cloud_events(("Payment", "1", "created")), 401),
        ("bm90IGEgc2lnbmF0dXJl", b"{not json", 401),
    ],
)
async def test_unsigned_deliveries_store_nothing(
    stack: Stack,
    sessions: async_sessionmaker[AsyncSession],
    signature: str | None,
    body: bytes,
    expected: int,
) -> None:
    status, reply = await post(stack, body, sign(body) if signature == "sign" else signature)
    assert status == expected
    assert reply["error"]["message"]
    assert "Traceback" not in json.dumps(reply)
    assert await inbox_count(sessions) == 0


async def test_oversized_body_is_refused(stack: Stack) -> None:
    body = b"[" + b" " * (3 * 1024 * 1024) + b"]"
    status, _ = await post(stack, body, sign(body))
    assert status == 413


async def test_unknown_and_disconnected_realms_are_acknowledged_and_dropped(
    stack: Stack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = cloud_events(("Payment", "1", "created"), realm="999999")
    status, reply = await post(stack, body, sign(body))
    assert (status, reply) == (200, {"stored": 0, "duplicates": 0, "dropped": 1})
    await stack.deps.connections.disconnect(TENANT, "jane", "done")
    body = cloud_events(("Payment", "2", "created"))
    status, reply = await post(stack, body, sign(body))
    assert (status, reply["dropped"]) == (200, 1)
    assert await inbox_count(sessions) == 0


async def test_storage_down_answers_503_so_intuit_retries(
    stack: Stack, emulator: Emulator, refused_addr: str
) -> None:
    from aicollect.db.engine import make_engine
    from services.integration.deps import IntegrationDeps
    from services.integration.server import build_server
    from tests.conftest import integration_settings

    dead_engine = make_engine(f"postgresql+asyncpg://postgres@{refused_addr}/x")
    dead_matcher = internal_channel(stack.matcher_addr, INTERNAL_TOKEN)
    async with aiohttp.ClientSession() as http:
        deps = IntegrationDeps.create(
            integration_settings(emulator.url), dead_engine, http, dead_matcher
        )
        server = build_server(deps, address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
        await server.start()
        try:
            async with internal_channel(f"127.0.0.1:{server.port}", INTERNAL_TOKEN) as channel:
                # A valid delivery and one that would be kept raw: neither is acknowledged.
                for body in (cloud_events(("Payment", "1", "created")), b"{not json"):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        await igrpc.IntegrationServiceStub(channel).IngestWebhook(
                            pb.IngestWebhookRequest(body=body, signature=sign(body))
                        )
                    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await server.stop(None)
            await dead_matcher.close(None)
            await dead_engine.dispose()


class Recorder:
    """An applier standing in for QBO reads in the mechanics tests: it records what it was
    asked to apply, can refuse chosen entities, and checks no entity runs twice at once."""

    def __init__(self, poison: set[str] | None = None) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.poison = poison or set()
        self.in_flight: set[str] = set()
        self.overlaps = 0

    async def __call__(
        self, tenant: str, realm: str, wanted: dict[str, list[str]], provider: str
    ) -> None:
        assert provider == "qbo"  # the connection's platform, passed with its events
        if realm in self.in_flight:
            self.overlaps += 1  # two workers inside one realm at once
        self.in_flight.add(realm)
        try:
            await asyncio.sleep(0.001)
            for entity, ids in wanted.items():
                for entity_id in ids:
                    self.calls[(entity, entity_id)] += 1
            poisoned = [i for ids in wanted.values() for i in ids if i in self.poison]
            if poisoned:
                raise RuntimeError(f"cannot apply Invoice {poisoned[0]}")
        finally:
            self.in_flight.discard(realm)


async def test_retries_then_dead_letter_then_replay(
    stack: Stack, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    body = cloud_events(("Invoice", "1", "updated"), ("Invoice", "666", "updated"))
    assert (await post(stack, body, sign(body)))[0] == 200
    recorder = Recorder(poison={"666"})
    processor = InboxProcessor(engine, sessions, recorder, max_attempts=3, backoff_base_s=0.0)
    for _ in range(5):
        await processor.run_once()
    assert recorder.calls[("Invoice", "666")] == 1 + 3  # in the batch, then alone 3 times
    assert recorder.calls[("Invoice", "1")] == 2  # the failed batch, then alone: applied once
    async with internal_channel(stack.integration_addr, INTERNAL_TOKEN) as channel:
        status = await igrpc.IntegrationServiceStub(channel).GetConnectionStatus(
            pb.GetConnectionStatusRequest(tenant_id=TENANT)
        )
    assert status.sync.dead_letter_count == 1
    assert status.sync.inbox_backlog_count == 0
    assert status.sync.HasField("last_webhook_time")
    async with sessions() as session:
        dead = (
            await session.execute(select(InboxEvent).where(InboxEvent.status == "dead"))
        ).scalar_one()
    assert "cannot apply Invoice 666" in dead.last_error

    recorder.poison.clear()
    async with internal_channel(stack.integration_addr, INTERNAL_TOKEN) as channel:
        admin_stub = agrpc.AdminServiceStub(channel)
        reply = await admin_stub.ReplayDeadLetters(
            apb.ReplayDeadLettersRequest(tenant_id=TENANT, actor="oncall", reason="fixed")
        )
        assert reply.replayed_count == 1
        again = await admin_stub.ReplayDeadLetters(
            apb.ReplayDeadLettersRequest(tenant_id=TENANT, actor="oncall", reason="fixed")
        )
        assert again.replayed_count == 0
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await admin_stub.ReplayDeadLetters(apb.ReplayDeadLettersRequest(tenant_id=TENANT))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await processor.run_once()
    assert recorder.calls[("Invoice", "666")] == 5
    async with sessions() as session:
        statuses = (await session.execute(select(InboxEvent.status))).scalars().all()
    assert set(statuses) == {"done"}


async def test_kill_switch_pauses_processing_while_events_keep_being_stored(
    stack: Stack, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        await admin.update_platform_settings(
            session, {"qbo_kill_switch": True}, actor="oncall", reason="incident"
        )
    body = cloud_events(("Payment", "5", "created"))
    assert (await post(stack, body, sign(body)))[0] == 200
    recorder = Recorder()
    processor = InboxProcessor(engine, sessions, recorder)
    assert await processor.run_once() == 0
    assert not recorder.calls
    async with sessions.begin() as session:
        await admin.update_platform_settings(
            session, {"qbo_kill_switch": False}, actor="oncall", reason="resolved"
        )
    assert await processor.run_once() == 1
    assert recorder.calls[("Payment", "5")] == 1


async def test_two_replicas_share_the_inbox_without_double_processing(
    stack: Stack, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], database_url: str
) -> None:
    from aicollect.db.engine import make_engine, make_sessionmaker

    total = 0
    for batch in range(10):
        events = [("Invoice", f"{batch * 30 + i}", "updated") for i in range(30)]
        body = cloud_events(*events)
        status, reply = await post(stack, body, sign(body))
        assert status == 200
        total += reply["stored"]
    assert total == 300
    recorder = Recorder()
    other_engine = make_engine(database_url, pool_size=5)
    replicas = [
        InboxProcessor(engine, sessions, recorder, batch_size=25),
        InboxProcessor(other_engine, make_sessionmaker(other_engine), recorder, batch_size=25),
    ]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in replicas]
    for _ in range(200):
        if sum(r.processed for r in replicas) >= 300:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    await other_engine.dispose()
    assert sum(r.processed for r in replicas) == 300
    assert all(count == 1 for count in recorder.calls.values())
    assert len(recorder.calls) == 300
    assert recorder.overlaps == 0  # one realm is processed by one worker at a time


async def test_nul_characters_are_stored_not_refused_forever(
    stack: Stack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A poison payload must be stored and acknowledged (Intuit would otherwise hold every
    later event behind it); PostgreSQL's jsonb refuses NUL, so it is kept escaped."""
    events = json.loads(cloud_events(("Payment", "77", "created")))
    events[0]["data"] = {"note\u0000": "a\u0000b", "path": "c:\\u0000"}
    body = json.dumps(events).encode()
    status, reply = await post(stack, body, sign(body))
    assert (status, reply["stored"]) == (200, 1)
    # An id with a control character cannot be an event: acknowledged, kept raw as a dead
    # letter with the reason (test_poison.py beside this file), never queued for processing.
    events[0]["intuitentityid"] = "7\u00007"
    events[0]["id"] = "another"
    body = json.dumps(events).encode()
    status, _ = await post(stack, body, sign(body))
    assert status == 200
    async with sessions() as session:
        rows = list((await session.execute(select(InboxEvent))).scalars())
    assert sorted((row.status, row.raw_body) for row in rows) == [("dead", body), ("pending", None)]


async def test_realms_are_processed_side_by_side_so_one_slow_company_delays_no_other(
    stack: Stack,
    emulator: Emulator,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The oldest realm's read waits on the platform; the next realm's events are applied
    meanwhile, not after it (one worker, one round)."""
    other_realm = "4620816365000002"
    emulator.state.create_company(CompanySpec(realm_id=other_realm, name="Globex", customers=1))
    await enable_tenant(stack, "globex")
    async with internal_channel(stack.integration_addr, INTERNAL_TOKEN) as channel:
        assert (await connect(channel, "globex", realm=other_realm)).connected
    for realm, entity_id in ((REALM_ID, "1"), (other_realm, "2")):
        body = cloud_events(("Payment", entity_id, "created"), realm=realm)
        assert (await post(stack, body, sign(body)))[1]["stored"] == 1
    other_applied = asyncio.Event()
    order: list[str] = []

    async def slow_first(
        tenant: str, realm: str, wanted: dict[str, list[str]], provider: str
    ) -> None:
        if realm == REALM_ID:
            # A realm processed alone would wait here for ever: the other one never started.
            await asyncio.wait_for(other_applied.wait(), 10)
        else:
            other_applied.set()
        order.append(realm)

    processor = InboxProcessor(engine, sessions, slow_first)
    assert await processor.run_once() == 2
    assert order == [other_realm, REALM_ID]
    async with sessions() as session:
        statuses = (await session.execute(select(InboxEvent.status))).scalars().all()
    assert statuses == ["done", "done"]

    with pytest.raises(ValueError, match="realm_concurrency"):
        InboxProcessor(engine, sessions, slow_first, realm_concurrency=0)
