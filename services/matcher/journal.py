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
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matcher.decisions.values import AuditEntry, OutreachEvent
from services.matcher.domain import Decision, EventType, Source
from services.matcher.models import AuditEvent, OutreachEventRow, Placement
from services.matcher.pause_scope import paused

OUTBOX_CHANNEL = "matching_outreach_events"
# pg_advisory_xact_lock key serialising outbox writers ("MOUTBOX" in ASCII, fits in int64).
OUTBOX_LOCK_KEY = 0x4D4F5554424F58
# Events that tell outreach to go on: never written while a person's pause holds it.
_CONTINUE_TYPES = frozenset({EventType.RESUME, EventType.BALANCE_CHANGED})
_CONTINUE = frozenset(t.value for t in _CONTINUE_TYPES)


@dataclass
class Journal:
    """One transaction's writes: audit rows now, outbox events at :meth:`close`."""

    session: AsyncSession
    now: datetime
    source: Source
    _events: list[dict[str, Any]] = field(default_factory=list)
    # Placements whose RESUME or BALANCE_CHANGED a person's pause held back (``close``).
    held: set[str] = field(default_factory=set)

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
        self.held |= await append_outbox(self.session, self._events)
        self._events.clear()

    def answered(self, decision: Decision) -> Decision:
        """The decision as answered: no event when its event was held back."""
        if decision.placement_id in self.held and decision.event in _CONTINUE_TYPES:
            return replace(decision, event=None)
        return decision


async def append_outbox(session: AsyncSession, events: list[dict[str, Any]]) -> set[str]:
    """The one way outbox rows are written: last in the transaction, under the lock that
    keeps ids in commit order, then a NOTIFY that wakes the streams at commit.

    Outreach a person paused stays paused: a RESUME (a restore) or a BALANCE_CHANGED
    ("continue with the new balance") for a placement a pause covers is held back; the
    RESUME that ends the pause carries the balance then (``pauses.py``, which takes the
    same lock). STOP and PAUSE always go out. Returns the placements held back."""
    await session.execute(select(func.pg_advisory_xact_lock(OUTBOX_LOCK_KEY)))
    continuing = [e["placement_id"] for e in events if e["type"] in _CONTINUE]
    held: set[str] = set()
    if continuing:
        held = set(
            (
                await session.execute(
                    select(Placement.placement_id).where(
                        Placement.placement_id.in_(continuing), paused()
                    )
                )
            ).scalars()
        )
        events = [e for e in events if not (e["type"] in _CONTINUE and e["placement_id"] in held)]
        if not events:
            return held
    await session.execute(insert(OutreachEventRow), events)
    await session.execute(select(func.pg_notify(OUTBOX_CHANNEL, "")))
    return held
