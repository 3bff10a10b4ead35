"""AdminService.ListAuditEvents: the integration service's audit trail over gRPC, with a
real database: filters, stable paging, refused input, no secrets in details."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.rpc.convert import timestamp
from aicollect.rpc.errors import error_info
from services.integration.models import AuditEvent

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _event(
    tenant_id: str | None, subject_type: str, action: str, minutes: int, **details: object
) -> AuditEvent:
    return AuditEvent(
        tenant_id=tenant_id,
        subject_type=subject_type,
        subject_id=tenant_id or "platform",
        action=action,
        actor="system",
        reason="test",
        details=details,
        created_at=T0 + timedelta(minutes=minutes),
    )


async def _seed(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        session.add_all(
            [
                _event("acme", "connection", "connection.connected", 0, realm_id="9130"),
                _event("acme", "connection", "connection.refused", 1, reason="invalid_state"),
                _event("acme", "placement_rules", "placement_rules.updated", 2),
                _event("globex", "connection", "connection.disconnected", 3),
                _event(None, "platform_setting", "setting.changed", 4, key="qbo_kill_switch"),
                _event("acme", "connection", "connection.disconnected", 5, previous_state="x"),
            ]
        )


def _stub(channel: grpc.aio.Channel) -> agrpc.AdminServiceAsyncStub:
    return agrpc.AdminServiceStub(channel)


async def _actions(channel: grpc.aio.Channel, **filters: object) -> list[tuple[str, str]]:
    reply = await _stub(channel).ListAuditEvents(apb.ListAuditEventsRequest(**filters))  # type: ignore[arg-type]
    return [(e.tenant_id, e.action) for e in reply.events]


async def test_filters_combine(
    integration_channel: grpc.aio.Channel, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await _seed(sessions)
    assert await _actions(integration_channel, tenant_id="acme", action_prefix="connection.") == [
        ("acme", "connection.disconnected"),
        ("acme", "connection.refused"),
        ("acme", "connection.connected"),
    ]
    assert await _actions(integration_channel, subject_type="connection", tenant_id="globex") == [
        ("globex", "connection.disconnected")
    ]
    assert await _actions(integration_channel, action_prefix="connection.disconnected") == [
        ("acme", "connection.disconnected"),
        ("globex", "connection.disconnected"),
    ]
    # A LIKE wildcard in the prefix is literal: "_" matches only "_".
    assert await _actions(integration_channel, action_prefix="placement_rules") == [
        ("acme", "placement_rules.updated")
    ]
    assert await _actions(integration_channel, action_prefix="placementxrules") == []
    # [start, end): minute 1 included, minute 4 excluded.
    window = await _actions(
        integration_channel,
        start_time=timestamp(T0 + timedelta(minutes=1)),
        end_time=timestamp(T0 + timedelta(minutes=4)),
    )
    assert window == [
        ("globex", "connection.disconnected"),
        ("acme", "placement_rules.updated"),
        ("acme", "connection.refused"),
    ]
    everything = await _actions(integration_channel)
    assert ("", "setting.changed") in everything
    assert len(everything) == 6


async def test_events_are_proto3_json_with_details_as_an_object(
    integration_channel: grpc.aio.Channel, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        session.add(
            _event(
                "acme",
                "connection",
                "connection.connected",
                0,
                realm_id="9130",
                refresh_token="rt-secret-value-123",
                nested={"client_secret": "s3cr3t-value", "note": "url?code=abcdef&x=1"},
            )
        )
    reply = await _stub(integration_channel).ListAuditEvents(apb.ListAuditEventsRequest())
    body = json_format.MessageToDict(reply)
    event = body["events"][0]
    assert event["subjectType"] == "connection"
    assert event["createTime"] == "2026-03-01T12:00:00Z"
    assert event["details"]["realm_id"] == "9130"
    text = json_format.MessageToJson(reply)
    assert "rt-secret-value-123" not in text
    assert "s3cr3t-value" not in text
    assert "abcdef" not in text
    assert event["details"]["refresh_token"] == "[REDACTED]"


async def test_paging_is_stable_while_events_are_added(
    integration_channel: grpc.aio.Channel, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as session:
        session.add_all(
            [_event("acme", "sync", f"sync.step_{i:02d}", i) for i in range(7)]
            + [_event("globex", "sync", "sync.other", 3)]
        )
    stub = _stub(integration_channel)
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        reply = await stub.ListAuditEvents(
            apb.ListAuditEventsRequest(tenant_id="acme", page_size=3, page_token=token)
        )
        seen += [e.action for e in reply.events]
        pages += 1
        if pages == 1:  # a newer event arrives between pages: later pages do not shift
            async with sessions.begin() as session:
                session.add(_event("acme", "sync", "sync.late", 60))
        token = reply.next_page_token
        if not token:
            break
    assert pages == 3
    assert seen == [f"sync.step_{i:02d}" for i in reversed(range(7))]
    # The token is bound to its filters.
    first = await stub.ListAuditEvents(apb.ListAuditEventsRequest(tenant_id="acme", page_size=2))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.ListAuditEvents(
            apb.ListAuditEventsRequest(tenant_id="globex", page_token=first.next_page_token)
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_info(err.value)
    assert detail is not None
    assert detail.metadata["field"] == "page_token"


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"page_size": -1}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"subject_type": "Connection; drop"}, "subject_type"),
        ({"action_prefix": "connection.%"}, "action_prefix"),
        ({"tenant_id": "a" * 500}, "tenant_id"),
        (
            {"start_time": timestamp(T0), "end_time": timestamp(T0 - timedelta(seconds=1))},
            "end_time",
        ),
        ({"start_time": Timestamp(seconds=10**12)}, "start_time"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    integration_channel: grpc.aio.Channel, request_fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _stub(integration_channel).ListAuditEvents(
            apb.ListAuditEventsRequest(**request_fields)  # type: ignore[arg-type]
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    detail = error_info(err.value)
    assert detail is not None
    assert detail.metadata["field"] == field
