"""What a confirmation of placement candidates shows while the workers carry it out.

A confirmation (``PlacementConfirmation``) is ``confirming`` from the moment the creditor
confirms until every candidate it covers is placed or dropped (``confirmed``), or it
fails (``failed``: the platform unreachable, the kill switch; what it had not placed
waits again). ``remaining`` is read from the candidates still ``confirming``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.integration.models import PlacementCandidate, PlacementConfirmation
from services.integration.sync.candidates import CONFIRMING

RUNNING = "confirming"
DONE = "confirmed"
FAILED = "failed"


@dataclass(frozen=True)
class ConfirmationView:
    confirmation_id: str
    state: str
    total: int
    placed: int
    dropped: int
    remaining: int
    error: str


async def customers(session: AsyncSession, tenant_id: str, realm_id: str, status: str) -> int:
    """The distinct customers of the company's candidates in ``status``."""
    return int(
        await session.scalar(
            select(func.count(distinct(PlacementCandidate.customer_id))).where(
                PlacementCandidate.tenant_id == tenant_id,
                PlacementCandidate.realm_id == realm_id,
                PlacementCandidate.status == status,
            )
        )
        or 0
    )


async def count(session: AsyncSession, tenant_id: str, realm_id: str, status: str) -> int:
    """The company's candidates in ``status``."""
    return int(
        await session.scalar(
            select(func.count())
            .select_from(PlacementCandidate)
            .where(
                PlacementCandidate.tenant_id == tenant_id,
                PlacementCandidate.realm_id == realm_id,
                PlacementCandidate.status == status,
            )
        )
        or 0
    )


async def view(session: AsyncSession, row: PlacementConfirmation) -> ConfirmationView:
    left = (
        await count(session, row.tenant_id, row.realm_id, CONFIRMING) if row.state == RUNNING else 0
    )
    return ConfirmationView(
        confirmation_id=row.confirmation_id,
        state=row.state,
        total=row.total,
        placed=row.placed,
        dropped=row.dropped,
        remaining=left,
        error=row.error,
    )


async def latest(session: AsyncSession, tenant_id: str, realm_id: str) -> ConfirmationView | None:
    """The tenant's most recent confirmation of this company (None: never confirmed)."""
    row = await session.scalar(
        select(PlacementConfirmation)
        .where(
            PlacementConfirmation.tenant_id == tenant_id,
            PlacementConfirmation.realm_id == realm_id,
        )
        .order_by(PlacementConfirmation.created_at.desc())
        .limit(1)
    )
    return None if row is None else await view(session, row)


async def running_ids(session: AsyncSession) -> list[tuple[str, str]]:
    """(confirmation id, provider) of every confirmation still to be carried out."""
    rows = await session.execute(
        select(PlacementConfirmation.confirmation_id, PlacementConfirmation.provider)
        .where(PlacementConfirmation.state == RUNNING)
        .order_by(PlacementConfirmation.created_at)
    )
    return [(str(i), str(p)) for i, p in rows.tuples()]
