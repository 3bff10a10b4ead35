"""What the matcher purges: outreach events past their days (recording how far, so a stream
cursor that would skip purged events is refused), audit records past their years and stored
daily reports past theirs (counted from the end of the day reported). Placements, payments
and reconciliation facts are never purged here."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from aicollect.db.retention import Purge, purge_all, table_of
from aicollect.settings import Settings
from services.matcher.models import AuditEvent, DailyReportRow, OutboxRetention, OutreachEventRow

OUTBOX = "outreach_events"


def matcher_purges(settings: Settings) -> list[Purge]:
    return [
        Purge(
            OUTBOX,
            table_of(OutreachEventRow),
            "created_at",
            timedelta(days=settings.retention_outbox_days),
        ),
        Purge(
            "matching_audit_events",
            table_of(AuditEvent),
            "created_at",
            timedelta(days=365 * settings.retention_audit_years),
        ),
        Purge(
            "daily_reports",
            table_of(DailyReportRow),
            "end_time",
            timedelta(days=365 * settings.retention_report_years),
        ),
    ]


async def _record_outbox_purge(session: AsyncSession, purge: Purge, ids: list[Any]) -> None:
    """In the batch's own transaction: the outbox is purged through the highest id deleted."""
    if purge.name != OUTBOX:
        return
    table = table_of(OutboxRetention)
    stmt = insert(table).values(id=1, purged_through=max(ids))
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={"purged_through": stmt.excluded.purged_through},
            where=table.c.purged_through < stmt.excluded.purged_through,
        )
    )


async def purge_matcher(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    purged: Counter | None = None,
) -> dict[str, int]:
    return await purge_all(
        sessions,
        matcher_purges(settings),
        now or datetime.now(UTC),
        purged=purged,
        after_batch=_record_outbox_purge,
    )


async def outbox_purged_through(conn: AsyncConnection) -> int:
    """The highest purged outbox id (0 when nothing was ever purged)."""
    value = (await conn.execute(select(OutboxRetention.purged_through))).scalar()
    return int(value or 0)
