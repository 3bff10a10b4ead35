"""Outreach paused and resumed by a person: one placement, one debtor or the whole tenant
(``docs/pausing-outreach.md``).

A pause is one row of ``matching.outreach_pauses``; pausing a tenant never updates its
placements. A placement's outreach is paused while an open pause covers it, its debtor or
its tenant (``pause_scope.paused``). Matching goes on underneath: a payment during a pause
still resolves the placement (and emits STOP). Nothing resumes by itself.

Pauses and resumes take the tenant's pause lock, then the outbox lock
(``journal.OUTBOX_LOCK_KEY``, which every outreach event is written under), before the
pause rows are read or written. So a restore committed before a pause gets its PAUSE after
its RESUME, one committed after sees the pause and its RESUME is held back (the journal's
outbox writer), and a placement created meanwhile is seen by one side or the other
(``start_paused``). Events and the audit entry of each placement whose outreach changes
are written by one set-based statement.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, cast, func, insert, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import FailedPrecondition, InvalidArgument, NotFound
from services.matcher.domain import EventType, Status
from services.matcher.journal import OUTBOX_CHANNEL, OUTBOX_LOCK_KEY
from services.matcher.models import AuditEvent, OutreachEventRow, OutreachPause, Placement
from services.matcher.pause_scope import covers, paused

PLACEMENT, DEBTOR, TENANT = "placement", "debtor", "tenant"
ACTION_PAUSED = "placement.outreach_paused"
ACTION_RESUMED = "placement.outreach_resumed"
ACTION_PAUSE_OPENED = "outreach.paused"
ACTION_PAUSE_CLOSED = "outreach.resumed"
# First key of the per-tenant pause lock ("MP"); the second is the tenant id's hash.
TENANT_LOCK_CLASS = 0x4D50
# Longest id accepted in a target (placement, company, customer ids are short).
MAX_ID = 200


@dataclass(frozen=True)
class Target:
    """What a pause covers: ``scope`` and the ids that name it within the tenant."""

    scope: str
    placement_id: str = ""
    company_id: str = ""
    customer_id: str = ""

    def describe(self) -> str:
        if self.scope == PLACEMENT:
            return f"placement {self.placement_id}"
        if self.scope == DEBTOR:
            return f"debtor {self.customer_id} of company {self.company_id}"
        return "all placements of the tenant"


def target(
    scope: str, placement_id: str = "", company_id: str = "", customer_id: str = ""
) -> Target:
    """A validated target: exactly the ids its scope needs (bad input changes nothing)."""
    ids = {"placement_id": placement_id, "company_id": company_id, "customer_id": customer_id}
    ids = {name: value.strip() for name, value in ids.items()}
    for name, value in ids.items():
        if len(value) > MAX_ID or not value.isprintable():
            raise InvalidArgument(f"{name} is not a valid id", field=name)
    needed = {PLACEMENT: ("placement_id",), DEBTOR: ("company_id", "customer_id"), TENANT: ()}
    if scope not in needed:
        raise InvalidArgument("scope must name a placement, a debtor or the tenant", field="scope")
    for name, value in ids.items():
        if name in needed[scope] and not value:
            raise InvalidArgument(f"{name} is required to pause a {scope}", field=name)
        if name not in needed[scope] and value:
            raise InvalidArgument(f"{name} does not belong to a {scope} pause", field=name)
    return Target(scope, **ids)


def _tenant(tenant_id: str) -> str:
    tenant_id = tenant_id.strip()
    if not tenant_id or len(tenant_id) > MAX_ID or not tenant_id.isprintable():
        raise InvalidArgument("tenant_id is required (a printable id)", field="tenant_id")
    return tenant_id


async def _lock_outbox(session: AsyncSession) -> None:
    await session.execute(select(func.pg_advisory_xact_lock(OUTBOX_LOCK_KEY)))


async def _lock_tenant(session: AsyncSession, tenant_id: str, *, shared: bool) -> None:
    """The tenant's pause lock: pauses and resumes take it exclusively, intake shared, so
    a new placement is either seen by a pause or sees it (taken before the outbox lock)."""
    lock = func.pg_advisory_xact_lock_shared if shared else func.pg_advisory_xact_lock
    await session.execute(select(lock(TENANT_LOCK_CLASS, func.hashtext(tenant_id))))


async def _check_target(session: AsyncSession, tenant_id: str, t: Target) -> None:
    if t.scope == TENANT:
        return
    if t.scope == PLACEMENT:
        where: Any = Placement.placement_id == t.placement_id
        missing = NotFound(f"placement {t.placement_id} not found", reason="PLACEMENT_NOT_FOUND")
    else:
        where = (Placement.company_id == t.company_id) & (Placement.customer_id == t.customer_id)
        missing = NotFound(f"no placement of {t.describe()}", reason="DEBTOR_NOT_FOUND")
    found = await session.execute(
        select(Placement.placement_id).where(Placement.tenant_id == tenant_id, where).limit(1)
    )
    if found.first() is None:
        raise missing


async def _open_pause(session: AsyncSession, tenant_id: str, t: Target) -> OutreachPause | None:
    stmt = select(OutreachPause).where(
        OutreachPause.tenant_id == tenant_id,
        OutreachPause.scope == t.scope,
        OutreachPause.company_id == t.company_id,
        OutreachPause.customer_id == t.customer_id,
        OutreachPause.resumed_at.is_(None),
    )
    if t.scope == PLACEMENT:
        stmt = stmt.where(OutreachPause.placement_id == t.placement_id)
    return (await session.execute(stmt.with_for_update())).scalar_one_or_none()


async def _announce(
    session: AsyncSession,
    condition: Any,
    event: EventType,
    reason: str,
    now: datetime,
    *,
    audit: tuple[str, str, dict[str, str]] | None,
) -> int:
    """One outreach event per placement matching ``condition`` (and, with ``audit``
    (action, actor, details), its audit entry), in one statement; how many placements."""
    events = (
        insert(OutreachEventRow)
        .from_select(
            [
                "event_id",
                "placement_id",
                "tenant_id",
                "type",
                "status",
                "currency_code",
                "balance_minor_units",
                "reason",
                "created_at",
            ],
            select(
                cast(func.gen_random_uuid(), Text),
                Placement.placement_id,
                Placement.tenant_id,
                literal(event.value, Text),
                Placement.status,
                Placement.currency_code,
                Placement.balance_minor_units,
                literal(reason, Text),
                literal(now),
            )
            .where(condition)
            .order_by(Placement.placement_id),
        )
        .returning(
            OutreachEventRow.placement_id,
            OutreachEventRow.tenant_id,
            OutreachEventRow.status,
            OutreachEventRow.currency_code,
            OutreachEventRow.balance_minor_units,
        )
        .cte("events")
    )
    counted: Any = events
    if audit is not None:
        action, actor, details = audit
        pairs: list[Any] = []
        for key, value in {"source": "pause", **details}.items():
            pairs += [literal(key, Text), literal(value, Text)]
        counted = (
            insert(AuditEvent)
            .from_select(
                [
                    "tenant_id",
                    "subject_type",
                    "subject_id",
                    "action",
                    "actor",
                    "reason",
                    "details",
                    "created_at",
                ],
                select(
                    events.c.tenant_id,
                    literal("placement", Text),
                    events.c.placement_id,
                    literal(action, Text),
                    literal(actor, Text),
                    literal(reason, Text),
                    func.jsonb_build_object(
                        *pairs,
                        literal("status", Text),
                        events.c.status,
                        literal("currency_code", Text),
                        events.c.currency_code,
                        literal("balance_minor_units", Text),
                        events.c.balance_minor_units,
                    ),
                    literal(now),
                ),
            )
            .returning(AuditEvent.id)
            .cte("audits")
        )
    count = int((await session.execute(select(func.count()).select_from(counted))).scalar_one())
    if count:
        await session.execute(select(func.pg_notify(OUTBOX_CHANNEL, "")))
    return count


def _audit_pause(
    pause: OutreachPause, action: str, actor: str, reason: str, now: datetime, count: int
) -> AuditEvent:
    subject = (
        ("placement", pause.placement_id)
        if pause.placement_id
        else ("outreach_pause", pause.pause_id)
    )
    return AuditEvent(
        tenant_id=pause.tenant_id,
        subject_type=subject[0],
        subject_id=subject[1],
        action=action,
        actor=actor,
        reason=reason,
        details={
            "source": "pause",
            "pause_id": pause.pause_id,
            "scope": pause.scope,
            "placement_id": pause.placement_id or "",
            "company_id": pause.company_id,
            "customer_id": pause.customer_id,
            "placements_changed": count,
        },
        created_at=now,
    )


def _covered_active(pause: OutreachPause) -> Any:
    """The active placements one pause (a row, so its values are bound) covers."""
    return covers(pause, Placement) & (Placement.status == Status.ACTIVE.value)


async def pause_outreach(
    session: AsyncSession, tenant_id: str, t: Target, actor: str, reason: str
) -> tuple[OutreachPause, int]:
    """Opens a pause; PAUSE for every active placement it covers not paused already.
    FAILED_PRECONDITION (``OUTREACH_ALREADY_PAUSED``) when the same target is paused."""
    tenant_id = _tenant(tenant_id)
    actor, reason = require_actor_and_reason(actor, reason)
    await _check_target(session, tenant_id, t)
    await _lock_tenant(session, tenant_id, shared=False)
    await _lock_outbox(session)
    existing = await _open_pause(session, tenant_id, t)
    if existing is not None:
        raise FailedPrecondition(
            f"outreach is already paused for {t.describe()} (by {existing.paused_by})",
            reason="OUTREACH_ALREADY_PAUSED",
            metadata={"pause_id": existing.pause_id},
        )
    now = datetime.now(UTC)
    pause = OutreachPause(
        pause_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        scope=t.scope,
        placement_id=t.placement_id or None,
        company_id=t.company_id,
        customer_id=t.customer_id,
        paused_by=actor,
        pause_reason=reason,
        paused_at=now,
    )
    session.add(pause)
    await session.flush()
    condition = _covered_active(pause) & ~paused(besides=pause.pause_id)
    words = f"outreach paused by {actor}: {reason}"
    audit = None if t.scope == PLACEMENT else (ACTION_PAUSED, actor, {"pause_id": pause.pause_id})
    count = await _announce(session, condition, EventType.PAUSE, words, now, audit=audit)
    session.add(_audit_pause(pause, ACTION_PAUSE_OPENED, actor, reason, now, count))
    await session.flush()
    return pause, count


async def resume_outreach(
    session: AsyncSession, tenant_id: str, t: Target, actor: str, reason: str
) -> tuple[OutreachPause, int]:
    """Closes the open pause of exactly this target; RESUME for every active placement it
    covered that no other open pause covers (a tenant's resume leaves a placement's or a
    debtor's own pause in place). FAILED_PRECONDITION (``OUTREACH_NOT_PAUSED``) when the
    target has no open pause of its own."""
    tenant_id = _tenant(tenant_id)
    actor, reason = require_actor_and_reason(actor, reason)
    await _check_target(session, tenant_id, t)
    await _lock_tenant(session, tenant_id, shared=False)
    await _lock_outbox(session)
    pause = await _open_pause(session, tenant_id, t)
    if pause is None:
        raise FailedPrecondition(
            f"outreach is not paused for {t.describe()} (a pause of its debtor or tenant is "
            "resumed there)",
            reason="OUTREACH_NOT_PAUSED",
        )
    now = datetime.now(UTC)
    pause.resumed_at, pause.resumed_by, pause.resume_reason = now, actor, reason
    await session.flush()
    condition = _covered_active(pause) & ~paused()
    words = f"outreach resumed by {actor}: {reason}"
    audit = None if t.scope == PLACEMENT else (ACTION_RESUMED, actor, {"pause_id": pause.pause_id})
    count = await _announce(session, condition, EventType.RESUME, words, now, audit=audit)
    session.add(_audit_pause(pause, ACTION_PAUSE_CLOSED, actor, reason, now, count))
    await session.flush()
    return pause, count


async def list_pauses(
    session: AsyncSession, tenant_id: str, include_resumed: bool, limit: int = 500
) -> list[OutreachPause]:
    """The tenant's open pauses (and resumed ones when asked), newest first."""
    stmt = select(OutreachPause).where(OutreachPause.tenant_id == _tenant(tenant_id))
    if not include_resumed:
        stmt = stmt.where(OutreachPause.resumed_at.is_(None))
    stmt = stmt.order_by(OutreachPause.paused_at.desc(), OutreachPause.pause_id).limit(limit)
    return list((await session.execute(stmt)).scalars())


async def paused_ids(session: AsyncSession, placement_ids: list[str]) -> set[str]:
    """Which of these placements have their outreach paused by a person."""
    if not placement_ids:
        return set()
    rows = await session.execute(
        select(Placement.placement_id).where(Placement.placement_id.in_(placement_ids), paused())
    )
    return set(rows.scalars())


async def start_paused(
    session: AsyncSession, tenant_id: str, placement_ids: list[str], now: datetime
) -> int:
    """New placements of a paused debtor or tenant start paused: a PAUSE event and an audit
    entry each. Under the tenant's shared pause lock, a pause either committed before (and
    is seen here) or waits for this transaction (and sees the new placements); the outbox
    lock is taken only when the tenant has an open pause."""
    if not placement_ids:
        return 0
    await _lock_tenant(session, tenant_id, shared=True)
    open_pause = await session.execute(
        select(OutreachPause.pause_id)
        .where(OutreachPause.tenant_id == tenant_id, OutreachPause.resumed_at.is_(None))
        .limit(1)
    )
    if open_pause.first() is None:
        return 0
    await _lock_outbox(session)
    condition = (
        Placement.placement_id.in_(placement_ids)
        & (Placement.status == Status.ACTIVE.value)
        & paused()
    )
    words = "placed while outreach is paused for its debtor or tenant"
    return await _announce(
        session, condition, EventType.PAUSE, words, now, audit=(ACTION_PAUSED, "system", {})
    )
