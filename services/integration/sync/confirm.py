"""Confirming placement candidates: recorded at once, carried out in the background.

``confirm`` records the creditor's decision in one transaction: the tenant's pending
candidates (and any an interrupted confirmation of the old kind left ``confirming``)
become ``confirming``, and a ``PlacementConfirmation`` row holds who confirmed, why, the
intake mode chosen for later invoices and how many candidates it covers (audited:
``candidates.confirmation_started``). At most one confirmation per tenant and company is
``confirming`` (a partial unique index); confirming again meanwhile is refused with
FAILED_PRECONDITION (reason ``CONFIRMATION_RUNNING``).

``run`` carries it out: under an advisory lock per tenant and company (a second replica
skips it), the candidates still ``confirming`` are read again from the platform in
batches by invoice id, through the company's request budget at bulk priority (payments
go first), right before they are placed. An invoice now paid, voided, deleted or no
longer selected by the rules is dropped; the others go to the matcher's
``UpsertPlacements`` with what the platform says now, and the placements, the candidates'
``confirmed`` status and the confirmation's counts are written in one transaction, so a
crash or restart resumes with what is still ``confirming`` and places nothing twice.
When nothing is left, the confirmation becomes ``confirmed`` and the chosen mode applies
(audited: ``candidates.confirmed``). If it fails (the platform unreachable, the kill
switch), what it had not placed goes back to ``pending`` and the confirmation is
``failed`` with the error (audited).

The request that confirms starts the run itself and waits up to ``wait_s`` for it: a small
confirmation answers ``confirmed`` with its counts as before; a larger one answers
``confirming`` and goes on in the background (the integration workers take up any
confirmation no process is carrying out: ``confirmation_worker``).

A change the sync recorded on a candidate while it was being placed (its ``sync_token``
differs from the version placed) is applied through the matcher path right after, so a
payment that lands during a confirmation still reaches the placement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.locks import AdvisoryLock
from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import DomainError, FailedPrecondition, InvalidArgument
from aicollect.provider import Provider
from services.integration import admin
from services.integration.budget import Priority
from services.integration.models import AuditEvent, PlacementCandidate, PlacementConfirmation
from services.integration.providers.base import InvoiceFacts
from services.integration.sync import apply, apply_context, candidates, confirmations, state
from services.integration.sync.candidates import (
    AUTOMATIC,
    CONFIRM_EACH_TIME,
    CONFIRMED,
    CONFIRMING,
    DROP_WORDING,
    DROPPED,
    EXCLUDED,
    PENDING,
    PREVIEW,
    DropReason,
    Json,
)
from services.integration.sync.confirmations import ConfirmationView
from services.integration.sync.context import SyncDeps
from services.integration.sync.service import connected_realm

log = logging.getLogger(__name__)

CONFIRM_LOCK = "aicollect-candidates-confirm"
BATCH = 500
# How long the confirming request waits for the run before answering ``confirming``:
# well inside the gateway's deadline, long enough for a few thousand candidates.
WAIT_S = 20.0
# How often the workers look for confirmations no process is carrying out.
POLL_S = 5.0

# Runs started in this process, by confirmation id (kept so none is garbage-collected).
_RUNS: dict[str, asyncio.Task[None]] = {}


class BackfillNotFinished(FailedPrecondition):
    default_reason = "BACKFILL_NOT_FINISHED"


class NothingToConfirm(FailedPrecondition):
    default_reason = "NOTHING_TO_CONFIRM"


class ConfirmationRunning(FailedPrecondition):
    default_reason = "CONFIRMATION_RUNNING"


@dataclass(frozen=True)
class ConfirmResult:
    confirmation: ConfirmationView
    excluded: int
    mode: str

    @property
    def placed(self) -> int:
        return self.confirmation.placed

    @property
    def dropped(self) -> int:
        return self.confirmation.dropped


def _future_mode(value: str) -> str:
    if value and value not in (AUTOMATIC, CONFIRM_EACH_TIME):
        raise InvalidArgument(
            "future_mode must be AUTOMATIC or CONFIRM_EACH_TIME (or unset to keep the mode)",
            field="future_mode",
        )
    return value


def _running(confirmation_id: str) -> ConfirmationRunning:
    return ConfirmationRunning(
        "a confirmation of this tenant's candidates is still being placed; wait until it "
        "ends (its progress is on the sync-progress screen)",
        metadata={"confirmation_id": confirmation_id},
    )


async def confirm(
    deps: SyncDeps,
    tenant_id: str,
    provider: Provider,
    *,
    actor: str,
    reason: str = "",
    future_mode: str = "",
    wait_s: float = WAIT_S,
) -> ConfirmResult:
    """Records the confirmation and starts it (see the module's text)."""
    tenant_id = admin.validate_tenant_id(tenant_id)
    actor, reason = require_actor_and_reason(actor, reason.strip() or "confirmed")
    future_mode = _future_mode(future_mode)
    realm_id = await connected_realm(deps, tenant_id, provider)
    async with deps.sessions() as session:
        await admin.ensure_enabled(session, tenant_id, provider)
        mode = await candidates.intake_mode(session, tenant_id, provider.value)
        row = await state.load(session, tenant_id, realm_id)
    if mode == PREVIEW and (row is None or row.backfill_phase != state.COMPLETED):
        raise BackfillNotFinished(
            "the first backfill has not finished; confirm once every candidate is staged"
        )
    try:
        confirmation_id = await _record(
            deps, tenant_id, realm_id, provider, actor, reason, future_mode, mode
        )
    except IntegrityError as exc:  # another request recorded one at the same moment
        raise _running("") from exc
    task = start(deps, confirmation_id)
    done, _ = await asyncio.wait({task}, timeout=wait_s)
    if done and (error := task.exception()) is not None:
        raise error
    return await result(deps, tenant_id, realm_id, confirmation_id)


async def _record(
    deps: SyncDeps,
    tenant_id: str,
    realm_id: str,
    provider: Provider,
    actor: str,
    reason: str,
    future_mode: str,
    mode: str,
) -> str:
    where = (
        PlacementCandidate.tenant_id == tenant_id,
        PlacementCandidate.realm_id == realm_id,
    )
    async with deps.sessions.begin() as session:
        running = await session.scalar(
            select(PlacementConfirmation.confirmation_id).where(
                PlacementConfirmation.tenant_id == tenant_id,
                PlacementConfirmation.realm_id == realm_id,
                PlacementConfirmation.state == confirmations.RUNNING,
            )
        )
        if running is not None:
            raise _running(running)
        await session.execute(
            update(PlacementCandidate)
            .where(*where, PlacementCandidate.status == PENDING)
            .values(status=CONFIRMING, status_actor=actor, status_reason=reason)
        )
        total = await confirmations.count(session, tenant_id, realm_id, CONFIRMING)
        if total == 0 and mode != PREVIEW:
            raise NothingToConfirm(
                "no placement candidate is waiting for confirmation; nothing was changed"
            )
        confirmation_id = uuid.uuid4().hex
        session.add(
            PlacementConfirmation(
                confirmation_id=confirmation_id,
                tenant_id=tenant_id,
                realm_id=realm_id,
                provider=provider.value,
                actor=actor,
                reason=reason,
                future_mode=future_mode,
                state=confirmations.RUNNING,
                total=total,
                placed=0,
                dropped=0,
                error="",
            )
        )
        session.add(
            _audit(
                tenant_id,
                "candidates.confirmation_started",
                actor,
                reason,
                {
                    "realm_id": realm_id,
                    "confirmation_id": confirmation_id,
                    "candidates": total,
                    "future_mode": future_mode,
                },
            )
        )
    return confirmation_id


async def result(
    deps: SyncDeps, tenant_id: str, realm_id: str, confirmation_id: str
) -> ConfirmResult:
    async with deps.sessions() as session:
        row = await session.get(PlacementConfirmation, confirmation_id)
        assert row is not None  # recorded above, never deleted
        view = await confirmations.view(session, row)
        excluded = await confirmations.count(session, tenant_id, realm_id, EXCLUDED)
        mode = await candidates.intake_mode(session, tenant_id, row.provider)
    return ConfirmResult(view, excluded, mode)


def start(deps: SyncDeps, confirmation_id: str) -> asyncio.Task[None]:
    """Runs the confirmation in this process unless it already does."""
    task = _RUNS.get(confirmation_id)
    if task is None or task.done():
        task = asyncio.create_task(run(deps, confirmation_id), name=f"confirm-{confirmation_id}")
        _RUNS[confirmation_id] = task
        task.add_done_callback(_ended)
    return task


def _ended(task: asyncio.Task[None]) -> None:
    confirmation_id = task.get_name().removeprefix("confirm-")
    if _RUNS.get(confirmation_id) is task:
        del _RUNS[confirmation_id]
    if not task.cancelled() and (error := task.exception()) is not None:
        log.warning(
            "confirmation failed",
            extra={"confirmation_id": confirmation_id, "error": type(error).__name__},
        )


async def confirmation_worker(syncs: Mapping[str, SyncDeps], stop: asyncio.Event) -> None:
    """Takes up every confirmation still ``confirming`` that no process carries out (after
    a crash or a restart; the advisory lock keeps another replica's run single)."""
    any_deps = next(iter(syncs.values()))
    while not stop.is_set():
        try:
            async with any_deps.sessions() as session:
                due = await confirmations.running_ids(session)
            for confirmation_id, provider in due:
                deps = syncs.get(provider)
                if deps is not None:
                    start(deps, confirmation_id)
        except Exception:  # a worker must outlive one bad round
            log.exception("confirmation round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), POLL_S)


def confirm_priority(total: int) -> Priority:
    """A confirmation of one batch is placed while the creditor waits for the answer: its
    re-reads go at the priority of other interactive reads (after payments, before bulk
    work, which spreads its share of the minute and would keep a person waiting seconds).
    A larger one is placed in the background, as bulk work."""
    return Priority.WEBHOOK if total <= BATCH else Priority.BACKFILL


async def run(deps: SyncDeps, confirmation_id: str) -> None:
    """Places what the confirmation still covers; nothing when another session runs it."""
    async with deps.sessions() as session:
        row = await session.get(PlacementConfirmation, confirmation_id)
        if row is None or row.state != confirmations.RUNNING:
            return
        tenant_id, realm_id = row.tenant_id, row.realm_id
    async with AdvisoryLock(deps.engine, CONFIRM_LOCK, f"{tenant_id}:{realm_id}") as lock:
        if not lock.held:
            return  # another process carries it out
        async with deps.sessions() as session:
            row = await session.get(PlacementConfirmation, confirmation_id)
            if row is None or row.state != confirmations.RUNNING:
                return  # finished by the process that held the lock before
        try:
            await _place_all(deps, row)
        except Exception as exc:
            await _fail(deps, row, exc)
            raise
        await _finish(deps, row)


async def _place_all(deps: SyncDeps, row: PlacementConfirmation) -> None:
    where = (
        PlacementCandidate.tenant_id == row.tenant_id,
        PlacementCandidate.realm_id == row.realm_id,
    )
    ctx = await apply_context.SyncContext.open(
        deps,
        row.tenant_id,
        row.realm_id,
        source="backfill",
        priority=confirm_priority(row.total),
        source_event_id=f"confirm:{row.confirmation_id}",
    )
    async with deps.sessions() as session:  # the reader chooses once how to read them all
        need = await confirmations.customers(session, row.tenant_id, row.realm_id, CONFIRMING)
    ctx.reader.expect("Customer", need)
    after = ""
    while True:
        async with deps.sessions() as session:
            ids = list(
                (
                    await session.execute(
                        select(PlacementCandidate.invoice_id)
                        .where(
                            *where,
                            PlacementCandidate.status == CONFIRMING,
                            PlacementCandidate.invoice_id > after,
                        )
                        .order_by(PlacementCandidate.invoice_id)
                        .limit(BATCH)
                    )
                ).scalars()
            )
        if not ids:
            return
        after = ids[-1]
        await _confirm_batch(ctx, ids, row.actor, row.reason, row.confirmation_id)


async def _fail(deps: SyncDeps, row: PlacementConfirmation, exc: Exception) -> None:
    """What was not placed waits again; the confirmation is ``failed`` with why."""
    error = exc.message if isinstance(exc, DomainError) else type(exc).__name__
    async with deps.sessions.begin() as session:
        await session.execute(
            update(PlacementCandidate)
            .where(
                PlacementCandidate.tenant_id == row.tenant_id,
                PlacementCandidate.realm_id == row.realm_id,
                PlacementCandidate.status == CONFIRMING,
            )
            .values(status=PENDING)
        )
        await session.execute(
            update(PlacementConfirmation)
            .where(PlacementConfirmation.confirmation_id == row.confirmation_id)
            .values(state=confirmations.FAILED, error=error[:500], finished_at=datetime.now(UTC))
        )
        session.add(
            _audit(
                row.tenant_id,
                "candidates.confirmation_failed",
                candidates.SYSTEM,
                error[:500],
                {"realm_id": row.realm_id, "confirmation_id": row.confirmation_id},
            )
        )


async def _finish(deps: SyncDeps, row: PlacementConfirmation) -> None:
    async with deps.sessions.begin() as session:
        done = await session.get(PlacementConfirmation, row.confirmation_id, with_for_update=True)
        assert done is not None
        intake = await candidates.intake_row(session, row.tenant_id, row.provider)
        before = intake.mode
        intake.mode = row.future_mode or (AUTOMATIC if before == PREVIEW else before)
        intake.confirmations += 1
        intake.updated_by = row.actor
        excluded = await confirmations.count(session, row.tenant_id, row.realm_id, EXCLUDED)
        done.state, done.finished_at = confirmations.DONE, datetime.now(UTC)
        session.add(
            _audit(
                row.tenant_id,
                "candidates.confirmed",
                row.actor,
                row.reason,
                {
                    "realm_id": row.realm_id,
                    "confirmation_id": row.confirmation_id,
                    "placed": done.placed,
                    "dropped": done.dropped,
                    "excluded": excluded,
                    "mode_before": before,
                    "mode_after": intake.mode,
                },
            )
        )
        log.info(
            "placement candidates confirmed",
            extra={
                "tenant_id": row.tenant_id,
                "realm_id": row.realm_id,
                "placed": done.placed,
                "dropped": done.dropped,
                "excluded": excluded,
                "mode": intake.mode,
            },
        )


def _audit(
    tenant_id: str, action: str, actor: str, reason: str, details: dict[str, object]
) -> AuditEvent:
    return AuditEvent(
        tenant_id=tenant_id,
        subject_type="placement_intake",
        subject_id=tenant_id,
        action=action,
        actor=actor,
        reason=reason,
        details=details,
    )


async def _counted(
    session: AsyncSession, confirmation_id: str, *, placed: int = 0, dropped: int = 0
) -> None:
    """Adds to the confirmation's counts in the caller's transaction."""
    await session.execute(
        update(PlacementConfirmation)
        .where(PlacementConfirmation.confirmation_id == confirmation_id)
        .values(
            placed=PlacementConfirmation.placed + placed,
            dropped=PlacementConfirmation.dropped + dropped,
        )
    )


async def _confirm_batch(
    ctx: apply_context.SyncContext, ids: list[str], actor: str, reason: str, confirmation: str
) -> tuple[int, int]:
    """One batch: read again, drop what may no longer be placed, place the rest."""
    found = await ctx.reader.by_ids("Invoice", ids)
    drops: dict[str, tuple[DropReason, InvoiceFacts | None, Json | None]] = {}
    to_place: list[tuple[Json, InvoiceFacts]] = []
    for invoice_id in ids:
        invoice = found.get(invoice_id)
        facts = ctx.facts.invoice_facts(invoice) if invoice is not None else None
        why = candidates.verdict(facts, ctx)
        if why is not None:
            drops[invoice_id] = (why, facts, invoice)
        elif invoice is not None and facts is not None:
            to_place.append((invoice, facts))
    dropped = await _drop(ctx, drops, confirmation)
    if not to_place:
        return 0, dropped
    contacts = await ctx.customers(f.customer_id for _, f in to_place)
    inputs = [
        ctx.facts.placement_input(invoice, facts=f, debtor=contacts.get(f.customer_id))
        for invoice, f in to_place
    ]
    results = await ctx.upsert(inputs)
    versions = {i.invoice_id: i.version for i in inputs}
    customers = {f.invoice_id: f.customer_id for _, f in to_place}
    newer: list[str] = []
    async with ctx.deps.sessions.begin() as session:
        rows = {
            r.invoice_id: r
            for r in (
                await session.execute(
                    select(PlacementCandidate)
                    .where(
                        PlacementCandidate.tenant_id == ctx.tenant_id,
                        PlacementCandidate.realm_id == ctx.realm_id,
                        PlacementCandidate.invoice_id.in_([r.invoice_id for r in results]),
                    )
                    .order_by(PlacementCandidate.invoice_id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            ).scalars()
        }
        await ctx.record_placed_in(
            session,
            [
                (
                    r.invoice_id,
                    customers[r.invoice_id],
                    r.placement_id,
                    versions[r.invoice_id],
                )
                for r in results
            ],
        )
        placements: dict[str, str] = {}
        for result in results:
            row = rows.get(result.invoice_id)
            if row is None:
                continue
            if row.sync_token != versions[result.invoice_id] or row.status != CONFIRMING:
                newer.append(row.invoice_id)  # the sync saw a later version meanwhile
            row.status, row.drop_reason = CONFIRMED, ""
            row.status_actor, row.status_reason = actor, reason
            row.placement_id = result.placement_id
            placements[row.invoice_id] = result.placement_id
        await _counted(session, confirmation, placed=len(results))
        if placements:
            session.add(
                AuditEvent(
                    tenant_id=ctx.tenant_id,
                    subject_type="placement_candidates",
                    subject_id=ctx.tenant_id,
                    action="candidates.placed",
                    actor=actor,
                    reason=reason,
                    details={
                        "realm_id": ctx.realm_id,
                        "confirmation_id": confirmation,
                        "count": len(placements),
                        "placements": placements,
                    },
                )
            )
    if newer:
        # Placed with the version read above; the platform has moved on since: the newer
        # state goes the matcher's way now that the invoices are placed.
        now_known = await ctx.reader.by_ids("Invoice", newer)
        await apply.apply_invoices(
            ctx, [now_known.get(i) or {"Id": i, "status": "Deleted"} for i in newer]
        )
    return len(results), dropped


async def _drop(
    ctx: apply_context.SyncContext,
    drops: dict[str, tuple[DropReason, InvoiceFacts | None, Json | None]],
    confirmation: str,
) -> int:
    if not drops:
        return 0
    dropped = 0
    async with ctx.deps.sessions.begin() as session:
        rows = (
            await session.execute(
                select(PlacementCandidate)
                .where(
                    PlacementCandidate.tenant_id == ctx.tenant_id,
                    PlacementCandidate.realm_id == ctx.realm_id,
                    PlacementCandidate.invoice_id.in_(list(drops)),
                    PlacementCandidate.status == CONFIRMING,
                )
                .order_by(PlacementCandidate.invoice_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        ).scalars()
        for row in rows:
            why, facts, invoice = drops[row.invoice_id]
            if facts is not None and invoice is not None:
                candidates.refresh_row(row, facts, ctx.facts.invoice(invoice).version)
            row.status, row.drop_reason = DROPPED, why.value
            row.status_actor, row.status_reason = candidates.SYSTEM, DROP_WORDING[why]
            dropped += 1
            session.add(
                AuditEvent(
                    tenant_id=ctx.tenant_id,
                    subject_type="placement_candidate",
                    subject_id=row.invoice_id,
                    action="candidate.dropped",
                    actor=candidates.SYSTEM,
                    reason=DROP_WORDING[why] + " (found when confirming)",
                    details={
                        "realm_id": ctx.realm_id,
                        "confirmation_id": confirmation,
                        "drop_reason": why.value,
                        "balance_minor": row.balance_minor,
                        "currency": row.currency,
                    },
                )
            )
        await _counted(session, confirmation, dropped=dropped)
    return dropped
