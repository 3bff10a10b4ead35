"""The CDC safety net: one change-data-capture poll of a realm.

Anything a webhook would have told us, a poll finds:

* ``GET /cdc?entities=Customer,Payment,Invoice,CreditMemo&changedSince=<mark - overlap>``.
  The high-water mark is QBO's response ``time`` (never our clock); each poll re-reads an
  overlap window before it, since applying a change twice is harmless.
* A response holding ``cdc_max_objects`` (Intuit: 1,000) objects may be truncated. The
  poll then asks per entity, and for an entity still at the cap it bisects the window:
  the earliest ``changedSince`` whose response is below the cap is found by halving
  (CDC's results always run up to now, so a complete response covers everything after
  its start), and the part of the window before it is read through the query endpoint
  (``MetaData.LastUpdatedTime`` range, paged), which is complete for entities that still
  exist. Deleted entities come only from CDC: the responses read while bisecting are
  applied too (QBO keeps the oldest changes of a truncated response; so does the
  emulator).
* When the mark is older than CDC's look-back (30 days), the gap is re-queried in full:
  every entity by ``MetaData.LastUpdatedTime``, and every placed invoice is checked for
  deletion.
* Invoices that became overdue since the last poll without changing (time passed) are
  found by due date and placed (the "newly overdue" sweep).

Changes go through ``apply`` like every other path. The caller holds the realm's CDC
lock; the PlatformCaller stops the poll at once when the kill switch is turned on.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from services.integration.budget import Priority
from services.integration.models import PlacedInvoice, SyncState
from services.integration.providers.base import ChangeSet, FailureKind, Json
from services.integration.sync import apply, apply_context, pacing, state
from services.integration.sync.context import SyncDeps
from services.integration.sync.rules import get_rules

log = logging.getLogger(__name__)

MIN_WINDOW = timedelta(seconds=1)
PLACED_BATCH = 500  # placed invoices checked for deletion per read
LOOKBACK_MARGIN = timedelta(hours=1)


@dataclass
class PollResult:
    high_water: str
    requeried: bool
    objects: int = 0
    cdc_calls: int = 0
    stats: apply_context.ApplyStats = field(default_factory=apply_context.ApplyStats)


class _Poll:
    def __init__(self, ctx: apply_context.SyncContext, cap: int) -> None:
        self.ctx = ctx
        self.cap = cap
        self.result = PollResult("", False)
        self._applied: set[tuple[str, str, str]] = set()

    async def cdc(self, entities: Sequence[str], since: datetime) -> ChangeSet:
        self.result.cdc_calls += 1
        return await self.ctx.reader.changes_since(entities, since)

    async def apply(self, objects: Mapping[str, Sequence[dict[str, Any]]]) -> None:
        """Applies objects not yet applied in this poll (bisecting re-reads some)."""
        fresh: dict[str, list[dict[str, Any]]] = {}
        for entity, rows in objects.items():
            for row in rows:
                key = (
                    entity,
                    self.ctx.facts.entity_id(row),
                    "deleted" if self.ctx.facts.is_deleted(row) else str(row.get("SyncToken", "")),
                )
                if key in self._applied:
                    continue
                self._applied.add(key)
                fresh.setdefault(entity, []).append(row)
        if fresh:
            self.result.objects += sum(len(v) for v in fresh.values())
            self.result.stats.add(await apply.apply_changes(self.ctx, fresh))

    async def cover(
        self, entities: Sequence[str], since: datetime, until: datetime, first: ChangeSet
    ) -> None:
        """Applies every change of ``entities`` from ``since`` up to ``until`` at least."""
        await self.apply(first.objects)
        if first.count < self.cap:
            return
        if len(entities) > 1:
            for entity in entities:
                await self.cover([entity], since, until, await self.cdc([entity], since))
            return
        entity = entities[0]
        log.info(
            "CDC response at the cap; bisecting",
            extra={"realm_id": self.ctx.realm_id, "entity": entity, "since": since.isoformat()},
        )
        low, high = since, until
        complete: ChangeSet | None = None
        while high - low > MIN_WINDOW:
            middle = low + (high - low) / 2
            response = await self.cdc([entity], middle)
            if response.count < self.cap:
                high, complete = middle, response
            else:
                low = middle
                await self.apply(response.objects)
        if complete is None:
            complete = await self.cdc([entity], high)
        await self.apply(complete.objects)
        await self.query_range(entity, since, high)

    async def query_range(self, entity: str, since: datetime, before: datetime) -> None:
        """What still exists of ``entity`` changed from ``since`` to ``before`` (the reader
        may widen the range; what overlaps the CDC part is applied once: ``apply`` skips
        repeats)."""
        async for page in self.ctx.reader.changed_between(entity, since, before):
            await self.apply({entity: page.rows})

    async def requery(self, since: datetime) -> None:
        """The gap is beyond CDC's reach: every entity changed since, and deletions of
        placed invoices."""
        self.result.requeried = True
        for entity in self.ctx.deps.platform.entities:
            async for page in self.ctx.reader.changed_between(entity, since):
                await self.apply({entity: page.rows})
        await self.deleted_placed_invoices()

    async def placed_batches(self) -> AsyncIterator[tuple[list[str], dict[str, Json]]]:
        """The placed invoices of the realm in batches: (ids, what the platform has now)."""
        ctx = self.ctx
        after = ""
        while True:
            async with ctx.deps.sessions() as session:
                ids = list(
                    (
                        await session.execute(
                            select(PlacedInvoice.qbo_invoice_id)
                            .where(
                                PlacedInvoice.tenant_id == ctx.tenant_id,
                                PlacedInvoice.realm_id == ctx.realm_id,
                                PlacedInvoice.qbo_invoice_id > after,
                            )
                            .order_by(PlacedInvoice.qbo_invoice_id)
                            .limit(PLACED_BATCH)
                        )
                    ).scalars()
                )
            if not ids:
                return
            after = ids[-1]
            yield ids, await ctx.reader.by_ids("Invoice", ids)

    async def deleted_placed_invoices(self) -> None:
        async for ids, found in self.placed_batches():
            gone = [{"Id": i, "status": "Deleted"} for i in ids if i not in found]
            if gone:
                await self.apply({"Invoice": gone})

    async def reread_placed_invoices(self) -> None:
        """Every placed invoice as it is now (a platform whose change times miss some
        edits, e.g. Xero's due date on a part-paid invoice): found ones applied (a still
        placeable invoice refreshes its placement's fields), missing ones deleted."""
        async for ids, found in self.placed_batches():
            gone = [{"Id": i, "status": "Deleted"} for i in ids if i not in found]
            rows = list(found.values())
            self.result.objects += len(rows)
            self.result.stats.add(await apply.apply_invoices(self.ctx, rows))
            if gone:
                await self.apply({"Invoice": gone})

    async def sweep(self, overdue_through: date | None) -> date | None:
        """Places invoices that became overdue (by the rules' days) since the last sweep."""
        ctx = self.ctx
        if overdue_through is None:
            return None  # the backfill has not finished: it places these
        cutoff = ctx.rules.due_cutoff(ctx.today)
        if cutoff <= overdue_through:
            return overdue_through
        async for page in ctx.reader.overdue_between(overdue_through, cutoff):
            self.result.stats.add(await apply.apply_invoices(ctx, page.rows, only_placeable=True))
        return cutoff


# The share of a company's daily request budget the re-read of placed invoices may use, on
# average: a round of 30,000 placements at Xero (750 calls) then comes every 18 hours, not
# every 6 (3,000 of Xero's 5,000 calls a day).
REREAD_SHARE_OF_DAY = 0.2
DAY_SECONDS = 86400.0


def stretched_reread(base: float, placed: int, ids_per_call: int, per_day: int | None) -> float:
    """The period of the re-read of placed invoices: the platform's, or longer when a
    round (``placed`` invoices, ``ids_per_call`` a call) would use more than
    ``REREAD_SHARE_OF_DAY`` of a daily budget of ``per_day`` calls on average."""
    if not base or not placed or not per_day:
        return base
    calls = -(-placed // max(1, ids_per_call))
    return max(base, DAY_SECONDS * calls / (per_day * REREAD_SHARE_OF_DAY))


async def reread_due(deps: SyncDeps, tenant_id: str, realm_id: str, ids_per_call: int) -> bool:
    """Whether the company's placed invoices are due for a re-read: never on a platform
    without one, nor while a backfill is queued or running (it reads every invoice it
    places, and starts the period when it finishes); else the platform's period after the
    last round, stretched by the number of placed invoices (counted only once the
    platform's own period has passed). Decided from the company's row as it is now, not as
    the poll that asks began: a backfill may have finished since."""
    base = deps.platform.placed_reread_seconds
    if not base:
        return False
    async with deps.sessions() as session:
        row = await state.load(session, tenant_id, realm_id)
    if row is None or row.backfill_phase in state.ACTIVE_PHASES:
        return False
    if row.placed_reread_at is None:
        return True
    elapsed = (state.now() - row.placed_reread_at).total_seconds()
    if elapsed < base:
        return False
    per_day = next(
        (w.requests for w in deps.platform.request_limits.windows if w.seconds >= DAY_SECONDS),
        None,
    )
    async with deps.sessions() as session:
        placed = (
            await session.execute(
                select(func.count())
                .select_from(PlacedInvoice)
                .where(PlacedInvoice.tenant_id == tenant_id, PlacedInvoice.realm_id == realm_id)
            )
        ).scalar_one()
    return elapsed >= stretched_reread(base, int(placed), ids_per_call, per_day)


async def poll(deps: SyncDeps, tenant_id: str, realm_id: str) -> PollResult | None:
    """One CDC poll of the realm; the caller holds its CDC lock. None without a mark."""
    async with deps.sessions() as session:
        row = await state.load(session, tenant_id, realm_id)
        stored = await get_rules(session, tenant_id)
    if row is None or row.cdc_high_water is None:
        return None
    # A request made from here on asks for another poll after this one.
    await state.update_state(deps.sessions, tenant_id, realm_id, cdc_requested=False)
    settings = deps.settings
    mark = deps.platform.facts.parse_time(row.cdc_high_water)
    since = mark - timedelta(seconds=settings.cdc_overlap_seconds)
    clock = state.clock_of(row, deps.platform.facts.parse_time)
    reader = deps.reader(tenant_id, realm_id, Priority.CDC)
    ctx = apply_context.SyncContext(
        deps,
        tenant_id,
        realm_id,
        rules=stored.rules,
        rules_version=stored.version,
        today=clock.today() if clock else mark.date(),
        source="cdc",
        source_event_id=f"cdc:{uuid.uuid4().hex}",
        reader=reader,
    )
    run = _Poll(ctx, settings.cdc_max_objects)
    lookback = timedelta(days=settings.cdc_lookback_days) - LOOKBACK_MARGIN
    first: ChangeSet | None = None
    if clock is None or clock.now() - since < lookback:
        try:
            first = await run.cdc(deps.platform.entities, since)
        except Exception as exc:
            failure = deps.platform.classify_error(exc)
            if failure is None or failure.kind != FailureKind.REFUSED or failure.status != 400:
                raise
            log.warning(
                "CDC refused the window; re-querying the gap",
                extra={
                    "tenant_id": tenant_id,
                    "realm_id": realm_id,
                    "intuit_tid": failure.trace_id,
                },
            )
    if first is not None:
        high_water = first.time
        clock = await apply_context.remember_company_time(deps, tenant_id, realm_id, high_water)
        ctx.today = clock.today()
        until = deps.platform.facts.parse_time(high_water)
        await run.cover(deps.platform.entities, since, until, first)
    else:
        high_water = await reader.company_time()
        clock = await apply_context.remember_company_time(deps, tenant_id, realm_id, high_water)
        ctx.today = clock.today()
        await run.requery(since)
    overdue_through = await run.sweep(row.overdue_through)
    run.result.high_water = high_water
    values: dict[str, Any] = {}
    if await reread_due(deps, tenant_id, realm_id, reader.ids_per_call):
        await run.reread_placed_invoices()
        values["placed_reread_at"] = state.now()
    finished = state.now()
    interval = await pacing.poll_interval(deps, realm_id, settings.cdc_interval_seconds)
    if overdue_through is not None and overdue_through != row.overdue_through:
        values["overdue_through"] = func.greatest(
            func.coalesce(SyncState.overdue_through, overdue_through), overdue_through
        )
    await state.update_state(
        deps.sessions,
        tenant_id,
        realm_id,
        cdc_high_water=high_water,
        cdc_last_poll_at=finished,
        cdc_next_poll_at=finished + timedelta(seconds=interval),
        cdc_last_error="",
        cdc_polls=SyncState.cdc_polls + 1,
        cdc_objects_applied=SyncState.cdc_objects_applied + run.result.objects,
        **values,
    )
    log.info(
        "CDC poll done",
        extra={
            "tenant_id": tenant_id,
            "realm_id": realm_id,
            "objects": run.result.objects,
            "cdc_calls": run.result.cdc_calls,
            "requeried": run.result.requeried,
            "high_water": high_water,
            "next_poll_in_s": round(interval),
        },
    )
    return run.result
