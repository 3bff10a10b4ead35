"""Placement candidates: preview, then confirm.

A new connection's tenant is in intake mode ``preview``: every overdue invoice the
placement rules select (the first backfill's, and any that become overdue later) is
staged here as a *candidate* instead of being sent to the matcher, so no placement and
no outreach exist until the creditor confirms (``sync.confirm``). After the first
confirmation the tenant's mode is ``automatic`` (newly selected invoices are placed as
before) or ``confirm_each_time`` (they keep waiting here for the next confirmation).

While an invoice is a candidate, what the sync learns about it (webhooks, CDC polls,
re-backfills) changes the candidate, never the matcher: a new balance is recorded, and a
paid, voided, deleted or no longer selected invoice drops a pending candidate (with the
reason; an excluded one stays excluded, so the creditor's choice is never lost). A
dropped candidate whose invoice is selected again waits again.

Races with a running confirmation are settled by the candidate's row lock: the sync locks
the row, then checks ``placed_invoices`` in the same transaction; a confirmation records
the placement and marks the row confirmed in one transaction under the same lock. So a
change is either seen by the confirmation (a newer ``sync_token`` than it placed: it
hands the invoice to the matcher path right after) or finds the invoice placed and takes
the matcher path itself.

Every change of a candidate's status leaves an audit record (``integration.audit_events``,
subject type ``placement_candidate``, or ``placement_candidates`` for a batch).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.errors import FailedPrecondition, NotFound
from services.integration.models import (
    AuditEvent,
    PlacedInvoice,
    PlacementCandidate,
    PlacementIntake,
)
from services.integration.providers.base import AccountingFacts, InvoiceFacts
from services.integration.sync.context import SyncDeps
from services.integration.sync.rules import PlacementRules, placeable

Json = dict[str, Any]

# Intake modes.
PREVIEW = "preview"
AUTOMATIC = "automatic"
CONFIRM_EACH_TIME = "confirm_each_time"
MODES = (PREVIEW, AUTOMATIC, CONFIRM_EACH_TIME)

# Candidate statuses.
PENDING = "pending"
EXCLUDED = "excluded"
CONFIRMING = "confirming"
CONFIRMED = "confirmed"
DROPPED = "dropped"
STATUSES = (PENDING, EXCLUDED, CONFIRMING, CONFIRMED, DROPPED)
OPEN = (PENDING, EXCLUDED, CONFIRMING, DROPPED)  # not (yet) placed

SYSTEM = "system"
DELETED_VERSION = "deleted"
MAX_INVOICE_ID = 64


class DropReason(StrEnum):
    PAID = "paid"
    VOIDED = "voided"
    DELETED = "deleted"
    NO_LONGER_SELECTED = "no_longer_selected"


DROP_WORDING = {
    DropReason.PAID: "paid before it was confirmed (balance now zero)",
    DropReason.VOIDED: "voided before it was confirmed",
    DropReason.DELETED: "deleted before it was confirmed",
    DropReason.NO_LONGER_SELECTED: "no longer selected by the placement rules",
}


class CandidateNotFound(NotFound):
    default_reason = "CANDIDATE_NOT_FOUND"


class CandidateNotPending(FailedPrecondition):
    default_reason = "CANDIDATE_NOT_PENDING"


class NotConnectedYet(FailedPrecondition):
    default_reason = "CONNECTION_NOT_FOUND"


class SyncContext(Protocol):
    """What the sync's side needs of ``apply_context.SyncContext`` (one tenant's company)."""

    deps: SyncDeps
    tenant_id: str
    realm_id: str
    rules: PlacementRules
    rules_version: int
    today: date
    facts: AccountingFacts
    run_id: str


# -- the tenant's intake mode ---------------------------------------------------------------


async def intake_mode(session: AsyncSession, tenant_id: str, provider: str) -> str:
    row = await session.get(PlacementIntake, (tenant_id, provider))
    return row.mode if row is not None else PREVIEW


async def intake_row(session: AsyncSession, tenant_id: str, provider: str) -> PlacementIntake:
    """The tenant's intake row, locked (created in ``preview`` when missing)."""
    await session.execute(
        pg_insert(PlacementIntake)
        .values(tenant_id=tenant_id, provider=provider, mode=PREVIEW, updated_by=SYSTEM)
        .on_conflict_do_nothing(
            index_elements=[PlacementIntake.tenant_id, PlacementIntake.provider]
        )
    )
    return (
        await session.execute(
            select(PlacementIntake)
            .where(PlacementIntake.tenant_id == tenant_id, PlacementIntake.provider == provider)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


# -- what the sync does with candidates ---------------------------------------------------


def verdict(facts: InvoiceFacts | None, ctx: SyncContext) -> DropReason | None:
    """Why an invoice (None: deleted) may no longer be placed; None while it may."""
    if facts is None:
        return DropReason.DELETED
    if facts.voided:
        return DropReason.VOIDED
    if facts.balance <= 0:
        return DropReason.PAID
    if not (ctx.rules.places(facts, ctx.today) and placeable(facts)):
        return DropReason.NO_LONGER_SELECTED
    return None


async def open_candidates(ctx: SyncContext, invoice_ids: Sequence[str]) -> set[str]:
    """Which of these invoices are candidates not (yet) placed."""
    if not invoice_ids:
        return set()
    async with ctx.deps.sessions() as session:
        rows = await session.execute(
            select(PlacementCandidate.invoice_id).where(
                PlacementCandidate.tenant_id == ctx.tenant_id,
                PlacementCandidate.realm_id == ctx.realm_id,
                PlacementCandidate.invoice_id.in_(list(invoice_ids)),
                PlacementCandidate.status != CONFIRMED,
            )
        )
        return set(rows.scalars())


def audit(
    tenant_id: str,
    invoice_id: str,
    action: str,
    actor: str,
    reason: str,
    details: dict[str, Any],
) -> AuditEvent:
    return AuditEvent(
        tenant_id=tenant_id,
        subject_type="placement_candidate",
        subject_id=invoice_id,
        action=action,
        actor=actor,
        reason=reason,
        details=details,
    )


def refresh_row(row: PlacementCandidate, facts: InvoiceFacts, token: str) -> None:
    row.customer_id = facts.customer_id
    row.customer_name = facts.customer_name
    row.doc_number = facts.doc_number
    row.currency = facts.currency
    row.total_minor = facts.total
    row.balance_minor = facts.balance
    if facts.due_date is not None:
        row.due_date = facts.due_date
    row.sync_token = token


async def update_from_sync(
    ctx: SyncContext, items: Sequence[tuple[Json, InvoiceFacts | None]]
) -> tuple[int, list[Json]]:
    """Applies invoices as now known (facts None: deleted) to their open candidates.

    Returns (candidates changed, the invoices that turned out to be placed meanwhile:
    the caller sends those the matcher's way)."""
    by_id = {ctx.facts.entity_id(invoice): (invoice, facts) for invoice, facts in items}
    changed = 0
    placed_now: list[Json] = []
    async with ctx.deps.sessions.begin() as session:
        rows = list(
            (
                await session.execute(
                    select(PlacementCandidate)
                    .where(
                        PlacementCandidate.tenant_id == ctx.tenant_id,
                        PlacementCandidate.realm_id == ctx.realm_id,
                        PlacementCandidate.invoice_id.in_(list(by_id)),
                    )
                    .order_by(PlacementCandidate.invoice_id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                )
            ).scalars()
        )
        placed = set(
            (
                await session.execute(
                    select(PlacedInvoice.qbo_invoice_id).where(
                        PlacedInvoice.tenant_id == ctx.tenant_id,
                        PlacedInvoice.realm_id == ctx.realm_id,
                        PlacedInvoice.qbo_invoice_id.in_(list(by_id)),
                    )
                )
            ).scalars()
        )
        seen: set[str] = set()
        for row in rows:
            invoice, facts = by_id[row.invoice_id]
            seen.add(row.invoice_id)
            if row.status == CONFIRMED or row.invoice_id in placed:
                placed_now.append(invoice)
                continue
            reason = verdict(facts, ctx)
            before = (row.status, row.balance_minor, row.sync_token)
            if facts is not None:
                refresh_row(row, facts, ctx.facts.invoice(invoice).version)
            if row.status == CONFIRMING:
                # A confirmation is placing it: it sees the newer version and hands it to
                # the matcher once placed.
                if facts is None:
                    row.sync_token = DELETED_VERSION
            elif reason is not None and row.status == PENDING:
                row.status, row.drop_reason = DROPPED, reason.value
                row.status_actor, row.status_reason = SYSTEM, DROP_WORDING[reason]
                session.add(
                    audit(
                        ctx.tenant_id,
                        row.invoice_id,
                        "candidate.dropped",
                        SYSTEM,
                        DROP_WORDING[reason],
                        {
                            "realm_id": ctx.realm_id,
                            "drop_reason": reason.value,
                            "from_status": before[0],
                            "balance_minor": row.balance_minor,
                            "currency": row.currency,
                        },
                    )
                )
            elif reason is None and row.status == DROPPED:
                row.status, row.drop_reason = PENDING, ""
                row.status_actor = SYSTEM
                row.status_reason = "selected again by the placement rules"
                session.add(
                    audit(
                        ctx.tenant_id,
                        row.invoice_id,
                        "candidate.restaged",
                        SYSTEM,
                        row.status_reason,
                        {"realm_id": ctx.realm_id, "balance_minor": row.balance_minor},
                    )
                )
            elif before[1] != row.balance_minor:
                session.add(
                    audit(
                        ctx.tenant_id,
                        row.invoice_id,
                        "candidate.balance_changed",
                        SYSTEM,
                        "the platform reported a new balance",
                        {
                            "realm_id": ctx.realm_id,
                            "old_balance_minor": before[1],
                            "new_balance_minor": row.balance_minor,
                            "currency": row.currency,
                        },
                    )
                )
            if (row.status, row.balance_minor, row.sync_token) != before:
                changed += 1
        placed_now.extend(by_id[i][0] for i in by_id if i not in seen)  # none expected
    return changed, placed_now


async def stage(ctx: SyncContext, items: Sequence[tuple[Json, InvoiceFacts]]) -> int:
    """Stages invoices the rules select (not placed, not yet candidates) as pending
    candidates; one audit record per batch. Returns how many were new."""
    if not items:
        return 0
    values = [
        {
            "tenant_id": ctx.tenant_id,
            "realm_id": ctx.realm_id,
            "invoice_id": facts.invoice_id,
            "provider": ctx.deps.platform.name,
            "customer_id": facts.customer_id,
            "customer_name": facts.customer_name,
            "doc_number": facts.doc_number,
            "currency": facts.currency,
            "total_minor": facts.total,
            "balance_minor": facts.balance,
            "due_date": facts.due_date,
            "sync_token": ctx.facts.invoice(invoice).version,
            "rules_version": ctx.rules_version,
            "status": PENDING,
            "drop_reason": "",
            "status_actor": SYSTEM,
            "status_reason": "selected by the placement rules",
            "placement_id": "",
            "staged_by_run": ctx.run_id,
        }
        for invoice, facts in items
    ]
    async with ctx.deps.sessions.begin() as session:
        inserted = list(
            (
                await session.execute(
                    pg_insert(PlacementCandidate)
                    .values(values)
                    .on_conflict_do_nothing(
                        index_elements=[
                            PlacementCandidate.tenant_id,
                            PlacementCandidate.realm_id,
                            PlacementCandidate.invoice_id,
                        ]
                    )
                    .returning(PlacementCandidate.invoice_id)
                )
            ).scalars()
        )
        if inserted:
            session.add(
                AuditEvent(
                    tenant_id=ctx.tenant_id,
                    subject_type="placement_candidates",
                    subject_id=ctx.tenant_id,
                    action="candidates.staged",
                    actor=SYSTEM,
                    reason="selected by the placement rules; waiting for confirmation",
                    details={
                        "realm_id": ctx.realm_id,
                        "rules_version": ctx.rules_version,
                        "run_id": ctx.run_id,
                        "count": len(inserted),
                        "invoice_ids": inserted,
                    },
                )
            )
    return len(inserted)


async def staged_by(deps: SyncDeps, tenant_id: str, realm_id: str, run_id: str) -> int:
    """How many candidates a backfill run staged (for its progress)."""
    if not run_id:
        return 0
    async with deps.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(PlacementCandidate)
            .where(
                PlacementCandidate.tenant_id == tenant_id,
                PlacementCandidate.realm_id == realm_id,
                PlacementCandidate.staged_by_run == run_id,
            )
        )
    return int(count or 0)
