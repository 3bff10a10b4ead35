"""Poison webhooks: a correctly signed delivery that cannot be stored as parsed events is
kept as raw bytes, dead-lettered with the reason and acknowledged, and never fails the
valid deliveries that share its commit. Through the real gateway, integration service,
inbox workers, matcher and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.rpc.client import internal_channel
from services.integration.inbox import ingest, raw_event_id
from services.integration.models import InboxEvent
from tests.conftest import INTERNAL_TOKEN, REALM_ID, Emulator
from tests.e2e.pipeline import TENANT, Pipeline, running_pipeline
from tests.helpers.webhooks import cloud_events, sign
from tests.stack import Stack


def _with_data(entity_id: str, data: str) -> bytes:
    """A valid Invoice delivery whose ``data`` is the given JSON text, spliced in as is."""
    events = json.loads(cloud_events(("Invoice", entity_id, "updated")))
    events[0]["data"] = "@DATA@"
    return json.dumps(events).replace('"@DATA@"', data).encode()


POISON: list[tuple[str, bytes]] = [
    # jsonb refuses a lone surrogate; Python's JSON accepts it.
    ("surrogate", _with_data("9001", '{"memo": "\\ud800"}')),
    ("surrogate-low", _with_data("9002", '{"memo": "a\\udc00b"}')),
    # Nested thousands deep: beyond what is parsed (or what jsonb takes).
    ("nested", _with_data("9003", "[" * 5000 + "]" * 5000)),
    ("nested-body", b"[" * 20000 + b"]" * 20000),
    # Python reads these numbers; jsonb refuses NaN and Infinity (found only by PostgreSQL).
    ("nan", _with_data("9004", '{"amount": NaN}')),
    ("infinity", _with_data("9005", '{"amount": 1e999}')),
    ("minus-infinity", _with_data("9006", '{"amount": -Infinity}')),
    # Not JSON, or neither format, or an entity id with a control character.
    ("not-json", b'{"eventNotifications": [{"realmId": "' + REALM_ID.encode() + b'", '),
    ("no-format", b'{"neither": "format", "realmId": "' + REALM_ID.encode() + b'"}'),
    ("control", cloud_events(("Invoice", "9\x007", "updated"))),
]


async def _post(gateway_url: str, body: bytes) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway_url}/v1/webhooks/qbo",
            data=body,
            headers={"intuit-signature": sign(body), "Content-Type": "application/json"},
        ) as resp,
    ):
        return resp.status, await resp.text()


async def _dead_letters(sessions: async_sessionmaker[AsyncSession]) -> list[InboxEvent]:
    async with sessions() as session:
        return list(
            (
                await session.execute(
                    select(InboxEvent)
                    .where(InboxEvent.status == "dead", InboxEvent.raw_body.is_not(None))
                    .order_by(InboxEvent.id)
                )
            ).scalars()
        )


@pytest_asyncio.fixture
async def pipeline(engine: AsyncEngine, emulator: Emulator) -> AsyncIterator[Pipeline]:
    # The emulator sends no webhooks of its own: the test delivers them.
    async with running_pipeline(engine, emulator, webhooks=False) as p:
        yield p


async def _backfill_done(p: Pipeline) -> None:
    async def done() -> bool:
        async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
            status = await igrpc.IntegrationServiceStub(channel).GetConnectionStatus(
                pb.GetConnectionStatusRequest(tenant_id=TENANT)
            )
        return status.backfill.phase == pb.BACKFILL_PHASE_COMPLETED

    await p.until(done, what="the initial backfill")


async def test_poison_deliveries_are_dead_lettered_and_never_fail_valid_ones(
    pipeline: Pipeline, sessions: async_sessionmaker[AsyncSession]
) -> None:
    p = pipeline
    await _backfill_done(p)  # so that only the webhooks below can place the new invoices
    customer = await p.control("POST", "customers", {"display_name": "Poison Co"})
    invoices = [
        await p.new_invoice(str(customer["Customer"]["Id"]), f"{100 + i}.00") for i in range(40)
    ]
    valid = [cloud_events(("Invoice", invoice, "created")) for invoice in invoices]
    deliveries = valid + [body for _, body in POISON]
    # All at once, so that valid and poison deliveries share the writer's group commits.
    replies = await asyncio.gather(*(_post(p.stack.gateway_url, body) for body in deliveries))

    assert [status for status, _ in replies] == [200] * 50, replies
    assert all(json.loads(text)["stored"] == 1 for text in [t for _, t in replies[:40]])
    for invoice in invoices:  # stored and processed: each invoice became a placement
        placement = await p.placed(invoice, within=30)
        assert placement.status == mpb.PLACEMENT_STATUS_ACTIVE

    dead = await _dead_letters(sessions)
    assert len(dead) == len(POISON)
    by_body = {row.raw_body: row for row in dead}
    for name, body in POISON:
        row = by_body[body]  # the exact bytes as received
        assert row.event_id == raw_event_id(body)
        assert row.last_error.startswith("not stored as parsed: "), name
        assert len(row.last_error) > len("not stored as parsed: ") + 5, name
        # Filed under the realm the body names (its tenant's), if it names one.
        named = name != "nested-body"
        assert row.realm_id == (REALM_ID if named else "unattributed"), name
        assert row.tenant_id == (TENANT if named else ""), name
    reasons = {name: by_body[body].last_error for name, body in POISON}
    assert "surrogate" in reasons["surrogate"]
    assert "nested too deeply" in reasons["nested-body"]
    assert "not JSON" in reasons["not-json"]
    assert "control characters" in reasons["control"]

    # Visible where dead letters are counted, and Intuit's retry is recognised as the same.
    async with internal_channel(p.stack.integration_addr, INTERNAL_TOKEN) as channel:
        status = await igrpc.IntegrationServiceStub(channel).GetConnectionStatus(
            pb.GetConnectionStatusRequest(tenant_id=TENANT)
        )
    assert status.sync.dead_letter_count == len(POISON) - 1  # all but the unattributed one
    retried = await _post(p.stack.gateway_url, POISON[0][1])
    assert retried[0] == 200
    assert len(await _dead_letters(sessions)) == len(POISON)


async def test_replaying_a_raw_dead_letter_stores_its_events_or_keeps_it_with_the_reason(
    stack: Stack,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    surrogate = _with_data("77", '{"memo": "\\ud800"}')
    assert (await _post(stack.gateway_url, surrogate))[0] == 200
    # A raw dead letter whose body can be stored today (say, the parser was fixed since):
    fixed = cloud_events(("Payment", "55", "created"))
    async with sessions.begin() as session:
        session.add(
            InboxEvent(
                event_id=raw_event_id(fixed),
                dedupe_key=raw_event_id(fixed),
                tenant_id=TENANT,
                realm_id=REALM_ID,
                entity="",
                entity_id="",
                operation="",
                occurred_at=(await _dead_letters(sessions))[0].occurred_at,
                status="dead",
                attempts=0,
                last_error="not stored as parsed: an older release refused it",
                payload={},
                raw_body=fixed,
            )
        )
    async with internal_channel(stack.integration_addr, INTERNAL_TOKEN) as channel:
        admin_stub = agrpc.AdminServiceStub(channel)
        reply = await admin_stub.ReplayDeadLetters(
            apb.ReplayDeadLettersRequest(realm_id=REALM_ID, actor="oncall", reason="parser fixed")
        )
    assert reply.replayed_count == 1
    async with sessions() as session:
        rows = {row.event_id: row for row in (await session.execute(select(InboxEvent))).scalars()}
    replayed = rows[raw_event_id(fixed)]
    assert replayed.status == "done"
    assert "1 stored" in replayed.last_error
    (event,) = [r for r in rows.values() if r.raw_body is None]
    assert (event.entity, event.entity_id, event.status) == ("Payment", "55", "pending")
    still = rows[raw_event_id(surrogate)]
    assert still.status == "dead"  # never handed to the workers as an event
    assert still.last_error.startswith("replay failed, still not stored as parsed: ")
    assert "surrogate" in still.last_error
    assert still.raw_body == surrogate


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"neither": "format"}', b'[{"type": "qbo.payment.created.v1"}]'],
)
async def test_signed_malformed_bodies_are_acknowledged_and_kept_raw(
    stack: Stack,
    sessions: async_sessionmaker[AsyncSession],
    body: bytes,
) -> None:
    status, text = await _post(stack.gateway_url, body)
    assert status == 200, text
    (row,) = await _dead_letters(sessions)
    assert row.raw_body == body
    assert row.last_error.startswith("not stored as parsed: ")
    assert row.realm_id == "unattributed"  # the body names no realm
    # Unsigned, it is refused and nothing is stored.
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{stack.gateway_url}/v1/webhooks/qbo", data=body + b" ") as resp,
    ):
        assert resp.status == 401
    assert len(await _dead_letters(sessions)) == 1


async def test_a_refused_delivery_in_a_shared_commit_is_isolated(
    stack: Stack,
    sessions: async_sessionmaker[AsyncSession],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Deliveries written at the same moment share one statement; PostgreSQL refuses the
    one with NaN (only it can tell), so each is stored on its own and only that one is
    dead-lettered."""
    writer = stack.deps.inbox_writer
    qbo = stack.deps.platforms.platform_for("qbo")
    valid = [cloud_events(("Payment", str(600 + i), "created")) for i in range(3)]
    nan = _with_data("666", '{"amount": NaN}')
    commits = writer.commits
    results = await asyncio.gather(
        *(ingest(writer, qbo, body, sign(body)) for body in [*valid, nan])
    )
    assert [r.stored for r in results] == [1, 1, 1, 0]
    assert [r.dead_lettered for r in results] == [0, 0, 0, 1]
    # One shared statement for all four, refused; then each valid one alone.
    refused = [r for r in caplog.records if "storing its deliveries one by one" in r.message]
    assert len(refused) == 1
    assert writer.commits == commits + 3
    (dead,) = await _dead_letters(sessions)
    assert dead.raw_body == nan
    assert "json" in dead.last_error.lower()
