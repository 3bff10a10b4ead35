"""Retention: what has served its purpose is deleted in small batches by a scheduled job.

Each service declares what it purges (``Purge``: a table, the rows that may go, and what a
row's age is measured by) and runs ``retention_loop``; this module holds the one way of
deleting. Batches are small and claimed with ``SKIP LOCKED``, so the job never holds long
locks and replicas running it at the same time share the work instead of waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import ColumnElement, Table, delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

log = logging.getLogger(__name__)

BATCH = 5_000


def table_of(model: type[object]) -> Table:
    """The table behind a mapped class (what a ``Purge`` deletes from)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def purged_counter(registry: CollectorRegistry) -> Counter:
    """``aicollect_retention_purged_rows_total{table}``, the same in every process."""
    return Counter(
        "aicollect_retention_purged_rows_total",
        "Rows deleted by the retention job, by table.",
        ["table"],
        registry=registry,
    )


@dataclass(frozen=True)
class Purge:
    """Rows of ``table`` whose ``age_column`` is older than ``keep`` and that ``where`` allows."""

    name: str
    table: Table
    age_column: str
    keep: timedelta
    where: ColumnElement[bool] | None = None
    key: str = "id"  # the primary key column

    def due(self, now: datetime) -> ColumnElement[bool]:
        old: ColumnElement[bool] = self.table.c[self.age_column] < now - self.keep
        return old if self.where is None else old & self.where


async def purge_batch(session: AsyncSession, purge: Purge, now: datetime, limit: int) -> list[Any]:
    """Deletes up to ``limit`` due rows, oldest keys first; returns their keys."""
    key = purge.table.c[purge.key]
    keys = (
        select(key)
        .where(purge.due(now))
        .order_by(key)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await session.execute(delete(purge.table).where(key.in_(keys)).returning(key))
    return list(result.scalars())


async def purge_all(
    sessions: async_sessionmaker[AsyncSession],
    purges: Sequence[Purge],
    now: datetime,
    *,
    purged: Counter | None = None,
    after_batch: Callable[[AsyncSession, Purge, list[Any]], Awaitable[None]] | None = None,
    limit: int = BATCH,
) -> dict[str, int]:
    """Runs every purge to the end, one committed batch at a time; returns rows deleted."""
    counts = {purge.name: 0 for purge in purges}
    for purge in purges:
        while True:
            async with sessions.begin() as session:
                ids = await purge_batch(session, purge, now, limit)
                if ids and after_batch is not None:
                    await after_batch(session, purge, ids)
            counts[purge.name] += len(ids)
            if purged is not None and ids:
                purged.labels(purge.name).inc(len(ids))
            if len(ids) < limit:
                break
    return counts


async def retention_loop(
    run_once: Callable[[], Awaitable[dict[str, int]]], interval: float, stop: asyncio.Event
) -> None:
    """Runs ``run_once`` now and every ``interval`` seconds until ``stop``; a failed round is
    logged and retried at the next one."""
    while not stop.is_set():
        try:
            counts = await run_once()
            if any(counts.values()):
                log.info("retention purged rows", extra={"purged": counts})
        except Exception:  # a background job must outlive one bad round
            log.warning("retention round failed", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
