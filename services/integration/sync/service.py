"""What the RPCs ask of the sync: SyncNow, progress for GetConnectionStatus, the
connected realm of a tenant."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from aicollect.errors import FailedPrecondition
from aicollect.provider import Provider
from services.integration import admin
from services.integration.models import Connection, SyncState
from services.integration.states import CONNECTED, NEEDS_REAUTHORIZATION
from services.integration.sync import candidates, state
from services.integration.sync.context import SyncDeps
from services.integration.tokens import (
    REAUTH_DETAIL,
    ReauthorizationRequired,
    unreadable_tokens,
)

FULL = "full"
INCREMENTAL = "incremental"


class NotConnected(FailedPrecondition):
    default_reason = "CONNECTION_NOT_FOUND"


@dataclass(frozen=True)
class BackfillView:
    phase: str
    invoices_seen: int = 0
    placements_created: int = 0
    candidates_staged: int = 0
    start_time: datetime | None = None
    finish_time: datetime | None = None
    last_error: str = ""


@dataclass(frozen=True)
class SyncView:
    backfill: BackfillView
    last_cdc_poll_time: datetime | None = None
    last_cdc_error: str = ""


def view_of(row: SyncState | None) -> SyncView:
    if row is None:
        return SyncView(BackfillView(state.NOT_STARTED))
    finished = (
        row.backfill_finished_at if row.backfill_phase in (state.COMPLETED, state.FAILED) else None
    )
    return SyncView(
        BackfillView(
            phase=row.backfill_phase,
            invoices_seen=row.backfill_invoices_seen,
            placements_created=row.backfill_placements_created,
            start_time=row.backfill_started_at,
            finish_time=finished,
            last_error=row.backfill_last_error,
        ),
        last_cdc_poll_time=row.cdc_last_poll_at,
        last_cdc_error=row.cdc_last_error,
    )


async def progress(deps: SyncDeps, tenant_id: str, realm_id: str) -> SyncView:
    """The sync figures of the tenant's current (or last) realm."""
    if not realm_id:
        return view_of(None)
    async with deps.sessions() as session:
        row = await state.load(session, tenant_id, realm_id)
    view = view_of(row)
    if row is None:
        return view
    staged = await candidates.staged_by(deps, tenant_id, realm_id, row.backfill_run_id)
    return replace(view, backfill=replace(view.backfill, candidates_staged=staged))


async def connected_realm(deps: SyncDeps, tenant_id: str, provider: Provider = Provider.QBO) -> str:
    """The tenant's connected realm at ``provider``, or FAILED_PRECONDITION saying why
    there is none."""
    tenant_id = admin.validate_tenant_id(tenant_id)
    async with deps.sessions() as session:
        row = await session.get(Connection, tenant_id)
    if row is None or row.realm_id is None or row.provider != provider.value:
        raise NotConnected(f"this tenant has not connected {provider.label}")
    if row.state == NEEDS_REAUTHORIZATION:
        raise ReauthorizationRequired(row.state_detail or REAUTH_DETAIL)
    if row.state != CONNECTED:
        raise NotConnected("this tenant's QuickBooks connection is disconnected")
    problem = unreadable_tokens(deps.cipher, row)
    if problem is not None:  # FAILED_PRECONDITION naming the key id
        raise problem
    return row.realm_id


async def sync_now(
    deps: SyncDeps,
    tenant_id: str,
    mode: str,
    actor: str,
    provider: Provider = Provider.QBO,
) -> tuple[bool, SyncView]:
    """Starts a full backfill or an immediate CDC poll unless one is already under way."""
    tenant_id = admin.validate_tenant_id(tenant_id)
    realm_id = await connected_realm(deps, tenant_id, provider)
    async with deps.sessions() as session:
        await admin.ensure_enabled(session, tenant_id, provider)
    actor = actor.strip()[:200] or "unknown"
    if mode == INCREMENTAL:
        started = await state.request_poll(deps.sessions, tenant_id, realm_id, actor=actor)
    else:
        started, _ = await state.request_backfill(
            deps.sessions, tenant_id, realm_id, actor=actor, reason="SyncNow (full)"
        )
    deps.trigger.poke()
    return started, await progress(deps, tenant_id, realm_id)
