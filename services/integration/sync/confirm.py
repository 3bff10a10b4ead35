"""Confirming placement candidates: re-read each invoice, then place it (or drop it).

``confirm`` takes the tenant's pending candidates (and any a crashed confirmation left
``confirming``), marks them ``confirming`` so nobody excludes them half-way, and works
through them in batches by invoice id: each batch is read again from the platform
(through the caller: the company's budget, token refresh, retries, kill switch) right
before it is placed. An invoice now paid, voided, deleted or no longer selected by the
rules is dropped; the others go to the matcher's ``UpsertPlacements`` with what the
platform says now (intake channel ``accounting_sync``: outreach begins), and the
placements are recorded and the candidates marked ``confirmed`` in one transaction.

A change the sync recorded on a candidate while it was being placed (its ``sync_token``
differs from the version placed) is applied through the matcher path right after, so a
payment that lands during a confirmation still reaches the placement. If the
confirmation fails (the platform unreachable, the kill switch), what it had not placed
goes back to ``pending``; a crash leaves ``confirming`` rows that the next confirmation
takes up. One confirmation per tenant runs at a time (an advisory lock).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, update

from aicollect.db.locks import AdvisoryLock
from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import ConcurrentModification, FailedPrecondition, InvalidArgument
from aicollect.provider import Provider
from services.integration import admin
from services.integration.budget import Priority
from services.integration.models import AuditEvent, PlacementCandidate
from services.integration.providers.base import InvoiceFacts
from services.integration.sync import apply, apply_context, candidates, state
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
from services.integration.sync.context import SyncDeps
from services.integration.sync.service import connected_realm

log = logging.getLogger(__name__)

CONFIRM_LOCK = "aicollect-candidates-confirm"
BATCH = 500


class BackfillNotFinished(FailedPrecondition):
    default_reason = "BACKFILL_NOT_FINISHED"


class NothingToConfirm(FailedPrecondition):
    default_reason = "NOTHING_TO_CONFIRM"


class ConfirmationRunning(ConcurrentModification):
    default_reason = "CONFIRMATION_RUNNING"


@dataclass(frozen=True)
class ConfirmResult:
    placed: int
    dropped: int
    excluded: int
    mode: str


def _future_mode(value: str) -> str:
    if value and value not in (AUTOMATIC, CONFIRM_EACH_TIME):
        raise InvalidArgument(
            "future_mode must be AUTOMATIC or CONFIRM_EACH_TIME (or unset to keep the mode)",
            field="future_mode",
        )
    return value


async def confirm(
    deps: SyncDeps,
    tenant_id: str,
    provider: Provider,
    *,
    actor: str,
    reason: str = "",
    future_mode: str = "",
) -> ConfirmResult:
    """Confirms the tenant's pending candidates (see the module's text)."""
    tenant_id = admin.validate_tenant_id(tenant_id)
    actor, reason = require_actor_and_reason(actor, reason.strip() or "confirmed")
    future_mode = _future_mode(future_mode)
    realm_id = await connected_realm(deps, tenant_id, provider)
    async with deps.sessions() as session:
        await admin.ensure_enabled(session, tenant_id, provider)
    async with AdvisoryLock(deps.engine, CONFIRM_LOCK, f"{tenant_id}:{realm_id}") as lock:
        if not lock.held:
            raise ConfirmationRunning(
                "a confirmation of this tenant's candidates is running; try again when it ends"
            )
        return await _confirm(deps, tenant_id, realm_id, provider, actor, reason, future_mode)


async def _confirm(
    deps: SyncDeps,
    tenant_id: str,
    realm_id: str,
    provider: Provider,
    actor: str,
    reason: str,
    future_mode: str,
) -> ConfirmResult:
    async with deps.sessions() as session:
        mode = await candidates.intake_mode(session, tenant_id, provider.value)
        row = await state.load(session, tenant_id, realm_id)
    if mode == PREVIEW and (row is None or row.backfill_phase != state.COMPLETED):
        raise BackfillNotFinished(
            "the first backfill has not finished; confirm once every candidate is staged"
        )
    where = (
        PlacementCandidate.tenant_id == tenant_id,
        PlacementCandidate.realm_id == realm_id,
    )
    async with deps.sessions.begin() as session:
        await session.execute(
            update(PlacementCandidate)
            .where(*where, PlacementCandidate.status == PENDING)
            .values(status=CONFIRMING, status_actor=actor, status_reason=reason)
        )
        waiting = int(
            await session.scalar(
                select(func.count())
                .select_from(PlacementCandidate)
                .where(*where, PlacementCandidate.status == CONFIRMING)
            )
            or 0
        )
    if waiting == 0 and mode != PREVIEW:
        raise NothingToConfirm(
            "no placement candidate is waiting for confirmation; nothing was changed"
        )
    confirmation = uuid.uuid4().hex
    placed = dropped = 0
    try:
        ctx = await apply_context.SyncContext.open(
            deps,
            tenant_id,
            realm_id,
            source="backfill",
            priority=Priority.WEBHOOK,
            source_event_id=f"confirm:{confirmation}",
        )
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
                break
            after = ids[-1]
            batch_placed, batch_dropped = await _confirm_batch(
                ctx, ids, actor, reason, confirmation
            )
            placed += batch_placed
            dropped += batch_dropped
    finally:
        # Whatever this run did not place (a refused invoice, an error half-way) waits again.
        async with deps.sessions.begin() as session:
            await session.execute(
                update(PlacementCandidate)
                .where(*where, PlacementCandidate.status == CONFIRMING)
                .values(status=PENDING)
            )
    async with deps.sessions.begin() as session:
        intake = await candidates.intake_row(session, tenant_id, provider.value)
        before = intake.mode
        intake.mode = future_mode or (AUTOMATIC if before == PREVIEW else before)
        intake.confirmations += 1
        intake.updated_by = actor
        excluded = int(
            await session.scalar(
                select(func.count())
                .select_from(PlacementCandidate)
                .where(*where, PlacementCandidate.status == EXCLUDED)
            )
            or 0
        )
        session.add(
            AuditEvent(
                tenant_id=tenant_id,
                subject_type="placement_intake",
                subject_id=tenant_id,
                action="candidates.confirmed",
                actor=actor,
                reason=reason,
                details={
                    "realm_id": realm_id,
                    "confirmation_id": confirmation,
                    "placed": placed,
                    "dropped": dropped,
                    "excluded": excluded,
                    "mode_before": before,
                    "mode_after": intake.mode,
                },
            )
        )
        mode_after = intake.mode
    log.info(
        "placement candidates confirmed",
        extra={
            "tenant_id": tenant_id,
            "realm_id": realm_id,
            "placed": placed,
            "dropped": dropped,
            "excluded": excluded,
            "mode": mode_after,
        },
    )
    return ConfirmResult(placed, dropped, excluded, mode_after)


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
    return dropped
