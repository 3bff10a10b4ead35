"""The decision journal: every placement change is written with its audit row and, when
outreach must act, its outbox event, in the caller's transaction.

The table (``services/matcher/decisions``) makes the audit entries and outreach events;
``decisions/effects.py`` hands them here. Outbox ids are the stream's cursor positions, so
they must become visible in id order: events are inserted last, under a transaction-level
advisory lock held until commit, so a transaction that took a lower id has always
committed before a higher id exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matcher.decisions.values import AuditEntry, OutreachEvent
from services.matcher.domain import Source
from services.matcher.models import AuditEvent, OutreachEventRow

OUTBOX_CHANNEL = "matching_outreach_events"
# pg_advisory_xact_lock key serialising outbox writers ("MOUTBOX" in ASCII, fits in int64).
OUTBOX_LOCK_KEY = 0x4D4F5554424F58


@dataclass
class Journal:
    """One transaction's writes: audit rows now, outbox events at :meth:`close`."""

    session: AsyncSession
    now: datetime
    source: Source
    _events: list[dict[str, Any]] = field(default_factory=list)

    def audit(self, entry: AuditEntry) -> None:
        facts: dict[str, Any] = {"source": self.source.channel, **entry.facts}
        if self.source.event_id:
            facts["source_event_id"] = self.source.event_id
        facts.update(entry.details)
        self.session.add(
            AuditEvent(
                tenant_id=entry.tenant_id,
                subject_type="placement",
                subject_id=entry.placement_id,
                action=entry.action,
                actor=entry.actor,
                reason=entry.reason,
                details=facts,
                created_at=self.now,
            )
        )

    def emit(self, event: OutreachEvent) -> None:
        self._events.append(
            {
                "event_id": str(uuid.uuid4()),
                "placement_id": event.placement_id,
                "tenant_id": event.tenant_id,
                "type": event.type.value,
                "status": event.status,
                "currency_code": event.currency_code,
                "balance_minor_units": event.balance_minor_units,
                "reason": event.reason,
                "created_at": self.now,
            }
        )

    async def close(self) -> None:
        """Flushes the decisions, then appends the outbox events in commit order."""
        await self.session.flush()
        if not self._events:
            return
        await append_outbox(self.session, self._events)
        self._events.clear()


async def append_outbox(session: AsyncSession, events: list[dict[str, Any]]) -> None:
    """The one way outbox rows are written: last in the transaction, under the lock that
    keeps ids in commit order, with the NOTIFY that wakes the streams at commit (PostgreSQL
    holds a notification back until its transaction commits, and drops it if it does not, so
    it is queued with the lock: one round trip less)."""
    await session.execute(
        select(func.pg_advisory_xact_lock(OUTBOX_LOCK_KEY), func.pg_notify(OUTBOX_CHANNEL, ""))
    )
    await session.execute(insert(OutreachEventRow), events)
