"""The inbox's figures for one tenant (GetConnectionStatus)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.integration.models import InboxEvent


@dataclass(frozen=True)
class InboxStats:
    backlog: int
    oldest_pending_age: timedelta | None
    dead_letters: int
    last_received: datetime | None


async def stats(session: AsyncSession, tenant_id: str) -> InboxStats:
    pending, oldest, dead, last = (
        await session.execute(
            select(
                func.count().filter(InboxEvent.status == "pending"),
                func.min(InboxEvent.received_at).filter(InboxEvent.status == "pending"),
                func.count().filter(InboxEvent.status == "dead"),
                func.max(InboxEvent.received_at),
            ).where(InboxEvent.tenant_id == tenant_id)
        )
    ).one()
    age = datetime.now(UTC) - oldest if oldest is not None else None
    return InboxStats(int(pending), age, int(dead), last)
