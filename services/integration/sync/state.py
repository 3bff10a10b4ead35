"""The per-realm sync state: backfill phase, progress and checkpoint; CDC cursor; locks.

One row per (tenant, realm) in ``integration.sync_states``. Work on a realm is serialised
across processes with PostgreSQL advisory locks held on a dedicated connection outside any
transaction (``aicollect.db.locks``), for as long as the job runs: a crashed process's
connection closes and its lock goes with it, so a backfill resumes elsewhere from its
checkpoint without waiting for a lease to expire; a job whose lock connection dies is
stopped (it resumes from its checkpoint) rather than run on beside the next holder.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.db.locks import AdvisoryLock
from services.integration.models import AuditEvent, SyncState

NOT_STARTED = "not_started"
PENDING = "pending"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
ACTIVE_PHASES = (PENDING, RUNNING)

BACKFILL_LOCK = "aicollect-sync-backfill"
CDC_LOCK = "aicollect-sync-cdc"


def now() -> datetime:
    return datetime.now(UTC)


@asynccontextmanager
async def realm_lock(
    engine: AsyncEngine, kind: str, tenant_id: str, realm_id: str
) -> AsyncIterator[bool]:
    """Yields True while this process holds the (kind, realm) lock, False if another does.

    If the lock's connection dies while held, the task is cancelled and the block raises
    ``AdvisoryLockLost``: another replica may already be running the same job."""
    async with AdvisoryLock(engine, kind, f"{tenant_id}:{realm_id}", cancel_on_loss=True) as lock:
        yield lock.held


async def load(session: AsyncSession, tenant_id: str, realm_id: str) -> SyncState | None:
    return await session.get(SyncState, (tenant_id, realm_id), populate_existing=True)


async def _locked(session: AsyncSession, tenant_id: str, realm_id: str) -> SyncState:
    await session.execute(
        pg_insert(SyncState)
        .values(
            tenant_id=tenant_id,
            realm_id=realm_id,
            backfill_phase=NOT_STARTED,
            backfill_run_id="",
            backfill_requested_by="",
            backfill_invoices_seen=0,
            backfill_placements_created=0,
            backfill_last_error="",
            backfill_next_position=1,
            backfill_last_invoice_id="",
            backfill_attempts=0,
            cdc_requested=False,
            cdc_last_error="",
            cdc_polls=0,
            cdc_objects_applied=0,
        )
        .on_conflict_do_nothing(index_elements=[SyncState.tenant_id, SyncState.realm_id])
    )
    row = (
        await session.execute(
            select(SyncState)
            .where(SyncState.tenant_id == tenant_id, SyncState.realm_id == realm_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return row


async def request_backfill(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: str,
    realm_id: str,
    *,
    actor: str,
    reason: str,
) -> tuple[bool, SyncState]:
    """Queues a full backfill unless one is pending or running: (started, state)."""
    async with sessions.begin() as session:
        row = await _locked(session, tenant_id, realm_id)
        if row.backfill_phase in ACTIVE_PHASES:
            return False, row
        row.backfill_phase = PENDING
        row.backfill_run_id = uuid.uuid4().hex
        row.backfill_requested_by = actor[:200]
        row.backfill_started_at = None
        row.backfill_finished_at = None
        row.backfill_invoices_seen = 0
        row.backfill_placements_created = 0
        row.backfill_last_error = ""
        row.backfill_company_date = None
        row.backfill_next_position = 1
        row.backfill_last_invoice_id = ""
        row.backfill_attempts = 0
        row.backfill_next_attempt_at = None
        session.add(
            AuditEvent(
                tenant_id=tenant_id,
                subject_type="sync",
                subject_id=tenant_id,
                action="sync.backfill_requested",
                actor=actor[:200] or "system",
                reason=reason[:2000],
                details={"realm_id": realm_id, "run_id": row.backfill_run_id},
            )
        )
        await session.flush()
        return True, row


async def request_poll(
    sessions: async_sessionmaker[AsyncSession], tenant_id: str, realm_id: str, *, actor: str
) -> bool:
    """Asks for an immediate CDC poll; False when one was already asked for."""
    async with sessions.begin() as session:
        row = await _locked(session, tenant_id, realm_id)
        if row.cdc_requested:
            return False
        row.cdc_requested = True
        session.add(
            AuditEvent(
                tenant_id=tenant_id,
                subject_type="sync",
                subject_id=tenant_id,
                action="sync.poll_requested",
                actor=actor[:200] or "system",
                reason="on-demand incremental sync",
                details={"realm_id": realm_id},
            )
        )
        return True


async def update_state(
    sessions: async_sessionmaker[AsyncSession],
    tenant_id: str,
    realm_id: str,
    *,
    run_id: str | None = None,
    **values: Any,
) -> bool:
    """Sets columns of the realm's row (only for ``run_id`` when given); False if no row."""
    statement = update(SyncState).where(
        SyncState.tenant_id == tenant_id, SyncState.realm_id == realm_id
    )
    if run_id is not None:
        statement = statement.where(SyncState.backfill_run_id == run_id)
    async with sessions.begin() as session:
        result = await session.execute(statement.values(**values))
        return bool(result.rowcount)  # type: ignore[attr-defined]


# -- the company's clock ------------------------------------------------------------------


@dataclass(frozen=True)
class CompanyClock:
    """QBO's time for the company, as last seen, moved on by our own elapsed time.

    The company's today is the date part of QBO's response ``time`` (rendered in the
    company's zone); our local clock only measures how much time passed since."""

    seen: datetime  # QBO's time, with the company's offset
    seen_at: datetime  # our clock when it was seen

    def now(self, at: datetime | None = None) -> datetime:
        return self.seen + ((at or now()) - self.seen_at)

    def today(self, at: datetime | None = None) -> date:
        return self.now(at).date()


def clock_of(row: SyncState | None, parse_time: Callable[[str], datetime]) -> CompanyClock | None:
    """The company's clock as last seen; ``parse_time`` reads the platform's time."""
    if row is None or row.company_time is None or row.company_time_seen_at is None:
        return None
    try:
        return CompanyClock(parse_time(row.company_time), row.company_time_seen_at)
    except ValueError:  # a stored time the platform's parser refuses: ask again
        return None


CLOCK_FRESH_FOR = timedelta(hours=6)


def clock_fresh(clock: CompanyClock | None) -> bool:
    return clock is not None and now() - clock.seen_at < CLOCK_FRESH_FOR
