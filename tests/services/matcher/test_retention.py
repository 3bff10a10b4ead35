"""Retention in the matcher: outreach events past their days and audit past its years are
purged; a stream cursor that would skip purged events is refused, never silently advanced."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest
from prometheus_client import generate_latest
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.settings import Settings
from services.matcher.metrics import MatcherMetrics
from services.matcher.models import AuditEvent as MatchingAudit
from services.matcher.models import OutboxRetention, OutreachEventRow
from services.matcher.retention import purge_matcher
from tests.helpers.rows import audit_row
from tests.services.matcher.conftest import Matcher, placement_input, qbo_payment, reason_of

NOW = datetime.now(UTC)
SETTINGS = Settings.from_env(
    {"AICOLLECT_RETENTION_OUTBOX_DAYS": "30", "AICOLLECT_RETENTION_AUDIT_YEARS": "7"}
)


async def test_old_outreach_events_are_purged_and_old_cursors_refused(
    matcher: Matcher, sessions: async_sessionmaker[AsyncSession]
) -> None:
    await matcher.place(placement_input("70", 10_000), placement_input("71", 10_000))
    await matcher.pay(qbo_payment("1", [("70", 4_000)]))
    await matcher.pay(qbo_payment("2", [("70", 6_000)]))
    await matcher.pay(qbo_payment("3", [("71", 10_000)]))
    first, second, third = await matcher.read_stream(3)
    async with sessions.begin() as session:  # the first two events are 40 days old
        ids = sorted((await session.execute(select(OutreachEventRow.id))).scalars())
        await session.execute(
            update(OutreachEventRow)
            .where(OutreachEventRow.id.in_(ids[:2]))
            .values(created_at=NOW - timedelta(days=40))
        )

    metrics = MatcherMetrics()
    counts = await purge_matcher(sessions, SETTINGS, now=NOW, purged=metrics.retention_purged)
    assert counts["outreach_events"] == 2
    assert 'aicollect_retention_purged_rows_total{table="outreach_events"} 2.0' in (
        generate_latest(metrics.registry).decode()
    )
    async with sessions() as session:
        assert (await session.execute(select(func.count(OutreachEventRow.id)))).scalar() == 1
        watermark = (await session.execute(select(OutboxRetention.purged_through))).scalar()
        assert watermark == ids[1]

    # A consumer that had read only the first event would skip the second: refused.
    call = matcher.stub.StreamOutreachEvents(pb.StreamOutreachEventsRequest(cursor=first.cursor))
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(info) == "CURSOR_EXPIRED"
    # One that had read both misses nothing; an empty cursor starts at what is kept.
    assert [e.event_id for e in await matcher.read_stream(1, cursor=second.cursor)] == [
        third.event_id
    ]
    assert [e.event_id for e in await matcher.read_stream(1)] == [third.event_id]


async def test_old_audit_of_placements_goes_after_its_years(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            insert(MatchingAudit),
            [
                audit_row("ancient", NOW - timedelta(days=366 * 8)),
                audit_row("kept", NOW - timedelta(days=2000)),
            ],
        )
    counts = await purge_matcher(sessions, SETTINGS, now=NOW)
    assert counts == {"outreach_events": 0, "matching_audit_events": 1, "daily_reports": 0}
    async with sessions() as session:
        subjects = set((await session.execute(select(MatchingAudit.subject_id))).scalars())
    assert subjects == {"kept"}
