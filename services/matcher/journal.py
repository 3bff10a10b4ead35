"""The decision journal: every placement change is written with its audit row and, when
outreach must act, its outbox event, in the caller's transaction.

Outbox ids are the stream's cursor positions, so they must become visible in id order:
events are inserted last, under a transaction-level advisory lock held until commit, so a
transaction that took a lower id has always committed before a higher id exists.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matcher.domain import EventType, Source, Status
from services.matcher.models import AuditEvent, OutreachEventRow, Placement
from services.matcher.settings import get_matching_settings

OUTBOX_CHANNEL = "matching_outreach_events"
# pg_advisory_xact_lock key serialising outbox writers ("MOUTBOX" in ASCII, fits in int64).
OUTBOX_LOCK_KEY = 0x4D4F5554424F58
SYSTEM_ACTOR = "system"


@dataclass
class Journal:
    """One transaction's decisions: settings read at decision time, audit, pending events."""

    session: AsyncSession
    tolerance: int
    window: timedelta
    now: datetime
    source: Source
    _events: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    async def open(cls, session: AsyncSession, source: Source) -> Journal:
        settings = await get_matching_settings(session)
        return cls(
            session=session,
            tolerance=int(settings.values["qbo_oob_amount_tolerance_cents"]),
            window=timedelta(minutes=int(settings.values["qbo_oob_match_window_minutes"])),
            now=datetime.now(UTC),
            source=source,
        )

    def audit(
        self,
        placement: Placement,
        action: str,
        reason: str,
        details: dict[str, Any],
        *,
        actor: str = SYSTEM_ACTOR,
    ) -> None:
        facts: dict[str, Any] = {
            "source": self.source.channel,
            "balance_minor_units": placement.balance_minor_units,
            "currency_code": placement.currency_code,
            "status": placement.status,
            "version": placement.version,
            "qbo_invoice_id": placement.qbo_invoice_id,
        }
        if self.source.event_id:
            facts["source_event_id"] = self.source.event_id
        facts.update(details)
        self.session.add(
            AuditEvent(
                tenant_id=placement.tenant_id,
                subject_type="placement",
                subject_id=placement.placement_id,
                action=action,
                actor=actor,
                reason=reason,
                details=facts,
                created_at=self.now,
            )
        )

    def emit(self, placement: Placement, event: EventType, reason: str) -> None:
        self._events.append(
            {
                "event_id": str(uuid.uuid4()),
                "placement_id": placement.placement_id,
                "tenant_id": placement.tenant_id,
                "type": event.value,
                "status": placement.status,
                "currency_code": placement.currency_code,
                "balance_minor_units": placement.balance_minor_units,
                "reason": reason,
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
    keeps ids in commit order, then a NOTIFY that wakes the streams at commit."""
    await session.execute(select(func.pg_advisory_xact_lock(OUTBOX_LOCK_KEY)))
    await session.execute(insert(OutreachEventRow), events)
    await session.execute(select(func.pg_notify(OUTBOX_CHANNEL, "")))


def event_for(old: Status, new: Status, balance_changed: bool) -> EventType | None:
    """The outreach event a status change implies. Never RESUME: only a human resumes."""
    terminal = {Status.RESOLVED_OUT_OF_BAND, Status.RESOLVED_PAID_PORTAL, Status.CLOSED}
    review = {Status.PAUSED_PENDING_REVIEW, Status.NEEDS_REVIEW}
    if new in terminal:
        return EventType.STOP if old not in terminal else None
    if new in review:
        return EventType.PAUSE if old not in review else None
    if new is Status.ACTIVE and old is Status.ACTIVE and balance_changed:
        return EventType.BALANCE_CHANGED
    return None
