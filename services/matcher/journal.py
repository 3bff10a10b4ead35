"""The decision journal: every placement change is written with its audit row and, when
outreach must act, its outbox event, in the caller's transaction.

The table (``services/matcher/decisions``) makes the audit entries and outreach events;
``decisions/effects.py`` hands them here, with the rows that change. Rows are written as
SQLAlchemy Core statements, without the ORM: inserts and updates wait in the journal until
:meth:`Journal.flush` (before any statement that could read them, and at
:meth:`Journal.close`), where each table's inserts go as one batch and its updates as one
batch per set of changed columns. Several changes to one row become one update, and
changes to a row still waiting to be inserted are folded into its insert.

Outbox ids are the stream's cursor positions, so they must become visible in id order:
events are inserted last, under a transaction-level advisory lock held until commit, so a
transaction that took a lower id has always committed before a higher id exists.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Insert, Table, Update, bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.matcher.decisions.values import AuditEntry, OutreachEvent
from services.matcher.domain import Decision, EventType, Source
from services.matcher.models import AUDIT_EVENTS, OUTREACH_EVENTS, Placement
from services.matcher.pause_scope import paused

OUTBOX_CHANNEL = "matching_outreach_events"
# pg_advisory_xact_lock key serialising outbox writers ("MOUTBOX" in ASCII, fits in int64).
OUTBOX_LOCK_KEY = 0x4D4F5554424F58
# Events that tell outreach to go on: never written while a person's pause holds it.
_CONTINUE_TYPES = frozenset({EventType.RESUME, EventType.BALANCE_CHANGED})
_CONTINUE = frozenset(t.value for t in _CONTINUE_TYPES)
_OUTBOX_LOCK = select(func.pg_advisory_xact_lock(OUTBOX_LOCK_KEY))
_NOTIFY = select(func.pg_notify(OUTBOX_CHANNEL, ""))


Key = tuple[Any, ...]


@dataclass
class _Pending:
    """One table's writes waiting for the next flush."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    # The rows above that have a primary key, by key (later changes fold into them).
    new: dict[Key, dict[str, Any]] = field(default_factory=dict)
    changes: dict[Key, dict[str, Any]] = field(default_factory=dict)


@cache
def _insert(table: Table) -> Insert:
    """A table's insert (the columns are the parameters'): built once, so its cache key is."""
    return insert(table)


@cache
def _update(table: Table) -> Update:
    """A table's update of one row by primary key (the columns set are the parameters')."""
    return update(table).where(
        *(column == bindparam(f"key_{column.name}") for column in table.primary_key.columns)
    )


def _key(table: Table, values: Mapping[str, Any]) -> Key | None:
    names = [column.name for column in table.primary_key.columns]
    if not all(name in values for name in names):
        return None
    return tuple(values[name] for name in names)


@dataclass
class Journal:
    """One transaction's writes: rows and audit entries at :meth:`flush`, outbox events at
    :meth:`close`."""

    session: AsyncSession
    now: datetime
    source: Source
    _events: list[dict[str, Any]] = field(default_factory=list)
    # Placements whose RESUME or BALANCE_CHANGED a person's pause held back (``close``).
    held: set[str] = field(default_factory=set)
    # Per table, in the order tables were first written.
    _pending: dict[Table, _Pending] = field(default_factory=dict)

    def insert(self, table: Table, row: dict[str, Any]) -> None:
        """A new row, written at the next flush."""
        pending = self._pending.setdefault(table, _Pending())
        pending.rows.append(row)
        key = _key(table, row)
        if key is not None:
            pending.new[key] = row

    def update(self, table: Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
        """Sets ``values`` on the row of primary key ``key`` at the next flush."""
        if not values:
            return
        pending = self._pending.setdefault(table, _Pending())
        found = _key(table, key)
        assert found is not None, f"{table.name}: {key!r} is not a primary key"
        new = pending.new.get(found)
        if new is not None:
            new.update(values)
        else:
            pending.changes.setdefault(found, {}).update(values)

    async def flush(self) -> None:
        """Writes what waits, table by table: its updates, then its inserts."""
        while self._pending:
            table = next(iter(self._pending))
            pending = self._pending.pop(table)
            await self._write_updates(table, pending.changes)
            await self._write_inserts(table, pending.rows)

    async def _write_updates(self, table: Table, changes: dict[Key, dict[str, Any]]) -> None:
        names = [column.name for column in table.primary_key.columns]
        batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for key, values in changes.items():
            where = {f"key_{name}": value for name, value in zip(names, key, strict=True)}
            batches.setdefault(tuple(sorted(values)), []).append({**values, **where})
        for batch in batches.values():
            await self.session.execute(_update(table), batch)

    async def _write_inserts(self, table: Table, rows: list[dict[str, Any]]) -> None:
        # One statement per run of rows with the same columns, in order.
        start = 0
        while start < len(rows):
            columns = rows[start].keys()
            end = start + 1
            while end < len(rows) and rows[end].keys() == columns:
                end += 1
            await self.session.execute(_insert(table), rows[start:end])
            start = end

    def audit(self, entry: AuditEntry) -> None:
        facts: dict[str, Any] = {"source": self.source.channel, **entry.facts}
        if self.source.event_id:
            facts["source_event_id"] = self.source.event_id
        facts.update(entry.details)
        self.insert(
            AUDIT_EVENTS,
            {
                "tenant_id": entry.tenant_id,
                "subject_type": "placement",
                "subject_id": entry.placement_id,
                "action": entry.action,
                "actor": entry.actor,
                "reason": entry.reason,
                "details": facts,
                "created_at": self.now,
            },
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
        await self.flush()
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
    await session.execute(_OUTBOX_LOCK)
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
    await session.execute(_insert(OUTREACH_EVENTS), events)
    await session.execute(_NOTIFY)
    return held
