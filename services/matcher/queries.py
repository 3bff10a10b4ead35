"""Read-only queries: one placement, pages of placements and of audit events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.errors import InvalidArgument, NotFound
from aicollect.rpc.paging import decode_token, encode_token, page_size
from services.matcher.domain import ReviewFlag, Status
from services.matcher.models import AuditEvent, Placement


async def get_placement(session: AsyncSession, placement_id: str) -> Placement:
    placement = await session.get(Placement, placement_id)
    if placement is None:
        raise NotFound(f"placement {placement_id} not found", reason="PLACEMENT_NOT_FOUND")
    return placement


async def list_placements(
    session: AsyncSession,
    tenant_id: str,
    statuses: list[Status] | None,
    provider: str,
    company_id: str,
    invoice_id: str,
    requested_size: int,
    token: str,
    *,
    review_flags: list[ReviewFlag] | None = None,
    resolution_reasons: list[str] | None = None,
) -> tuple[list[Placement], str]:
    """Oldest first. ``statuses`` None means all; an empty list matches nothing.
    ``review_flags`` None means any flag or none; ``resolution_reasons`` None means any
    reason (an exact match otherwise)."""
    size = page_size(requested_size)
    filters: dict[str, Any] = {
        "tenant_id": tenant_id,
        "statuses": None if statuses is None else sorted(s.value for s in statuses),
        "company_id": company_id,
        "invoice_id": invoice_id,
    }
    if provider:
        filters["provider"] = provider
    if review_flags is not None:
        filters["review_flags"] = sorted(f.value for f in review_flags)
    if resolution_reasons is not None:
        filters["resolution_reasons"] = sorted(resolution_reasons)
    position = decode_token(token, filters)
    if statuses is not None and not statuses:
        return [], ""
    stmt = select(Placement).where(Placement.tenant_id == tenant_id)
    if statuses is not None:
        stmt = stmt.where(Placement.status.in_([s.value for s in statuses]))
    if provider:
        stmt = stmt.where(Placement.provider == provider)
    if company_id:
        stmt = stmt.where(Placement.company_id == company_id)
    if invoice_id:
        stmt = stmt.where(Placement.invoice_id == invoice_id)
    if review_flags is not None:
        stmt = stmt.where(Placement.review_flag.in_([f.value for f in review_flags]))
    if resolution_reasons is not None:
        stmt = stmt.where(Placement.resolution_reason.in_(resolution_reasons))
    if position is not None:
        try:
            after = (datetime.fromisoformat(str(position["t"])), str(position["id"]))
        except (KeyError, ValueError):
            raise InvalidArgument("page_token is not valid", field="page_token") from None
        stmt = stmt.where(tuple_(Placement.created_at, Placement.placement_id) > after)
    stmt = stmt.order_by(Placement.created_at, Placement.placement_id).limit(size + 1)
    rows = list((await session.execute(stmt)).scalars())
    if len(rows) <= size:
        return rows, ""
    last = rows[size - 1]
    next_token = encode_token({"t": last.created_at.isoformat(), "id": last.placement_id}, filters)
    return rows[:size], next_token


async def list_audit_events(
    session: AsyncSession, tenant_id: str, placement_id: str, requested_size: int, token: str
) -> tuple[list[AuditEvent], str]:
    size = page_size(requested_size)
    filters = {"tenant_id": tenant_id, "placement_id": placement_id}
    position = decode_token(token, filters)
    stmt = select(AuditEvent)
    if tenant_id:
        stmt = stmt.where(AuditEvent.tenant_id == tenant_id)
    if placement_id:
        stmt = stmt.where(
            AuditEvent.subject_type == "placement", AuditEvent.subject_id == placement_id
        )
    if position is not None:
        after = position.get("id")
        if not isinstance(after, int):
            raise InvalidArgument("page_token is not valid", field="page_token")
        stmt = stmt.where(AuditEvent.id > after)
    rows = list((await session.execute(stmt.order_by(AuditEvent.id).limit(size + 1))).scalars())
    if len(rows) <= size:
        return rows, ""
    return rows[:size], encode_token({"id": rows[size - 1].id}, filters)
