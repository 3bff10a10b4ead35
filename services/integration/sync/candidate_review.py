"""What the creditor sees of placement candidates and does with them: the staged
candidates page by page with totals per currency (``list_candidates``), and excluding or
including one again (``set_excluded``, audited). Confirming them is ``sync.confirm``; what
the sync does with candidates, and their statuses, are in ``sync.candidates``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import require_actor_and_reason
from aicollect.errors import InvalidArgument
from aicollect.provider import Provider
from aicollect.rpc import paging
from services.integration import admin
from services.integration.models import (
    Connection,
    PlacementCandidate,
)
from services.integration.sync import confirmations, state
from services.integration.sync.candidates import (
    DROPPED,
    EXCLUDED,
    MAX_INVOICE_ID,
    PENDING,
    STATUSES,
    CandidateNotFound,
    CandidateNotPending,
    NotConnectedYet,
    audit,
    intake_mode,
)
from services.integration.sync.context import SyncDeps


@dataclass(frozen=True)
class CandidateView:
    invoice_id: str
    doc_number: str
    customer_id: str
    customer_name: str
    currency: str
    total: int
    balance: int
    due_date: date
    days_past_due: int
    rules_version: int
    status: str
    drop_reason: str
    status_actor: str
    status_reason: str
    placement_id: str
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class CurrencyWaiting:
    currency: str
    pending: int
    pending_balance: int
    excluded: int


@dataclass(frozen=True)
class CandidatePage:
    candidates: list[CandidateView]
    next_page_token: str
    mode: str
    totals: list[CurrencyWaiting]
    company_date: date
    confirmation: confirmations.ConfirmationView | None = None


def view(row: PlacementCandidate, today: date) -> CandidateView:
    return CandidateView(
        invoice_id=row.invoice_id,
        doc_number=row.doc_number,
        customer_id=row.customer_id,
        customer_name=row.customer_name,
        currency=row.currency,
        total=row.total_minor,
        balance=row.balance_minor,
        due_date=row.due_date,
        days_past_due=(today - row.due_date).days,
        rules_version=row.rules_version,
        status=row.status,
        drop_reason=row.drop_reason,
        status_actor=row.status_actor,
        status_reason=row.status_reason,
        placement_id=row.placement_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def tenant_realm(session: AsyncSession, tenant_id: str, provider: Provider) -> str:
    """The company of the tenant's connection at ``provider`` (connected or not): its
    candidates are that company's. FAILED_PRECONDITION when it never connected."""
    row = await session.get(Connection, tenant_id)
    if row is None or row.realm_id is None or row.provider != provider.value:
        raise NotConnectedYet(f"this tenant has not connected {provider.label}")
    return row.realm_id


async def company_today(
    session: AsyncSession, deps: SyncDeps, tenant_id: str, realm_id: str
) -> date:
    clock = state.clock_of(
        await state.load(session, tenant_id, realm_id), deps.platform.facts.parse_time
    )
    return clock.today() if clock is not None else state.now().date()


def _statuses(values: Sequence[str]) -> list[str]:
    for i, value in enumerate(values):
        if value not in STATUSES:
            raise InvalidArgument(
                f"statuses[{i}] is not a candidate status", field=f"statuses[{i}]"
            )
    return sorted(set(values))


async def list_candidates(
    deps: SyncDeps,
    tenant_id: str,
    provider: Provider,
    statuses: Sequence[str],
    page_size: int,
    page_token: str,
) -> CandidatePage:
    tenant_id = admin.validate_tenant_id(tenant_id)
    size = paging.page_size(page_size)
    wanted = _statuses(statuses)
    async with deps.sessions() as session:
        realm_id = await tenant_realm(session, tenant_id, provider)
        filters = {"tenant": tenant_id, "realm": realm_id, "statuses": wanted}
        position = paging.decode_token(page_token, filters)
        query = (
            select(PlacementCandidate)
            .where(
                PlacementCandidate.tenant_id == tenant_id, PlacementCandidate.realm_id == realm_id
            )
            .order_by(PlacementCandidate.due_date, PlacementCandidate.invoice_id)
            .limit(size + 1)
        )
        if wanted:
            query = query.where(PlacementCandidate.status.in_(wanted))
        if position is not None:
            try:
                after = (date.fromisoformat(str(position["due"])), str(position["id"]))
            except (KeyError, ValueError):
                raise InvalidArgument("page_token is not valid", field="page_token") from None
            query = query.where(
                tuple_(PlacementCandidate.due_date, PlacementCandidate.invoice_id) > after
            )
        rows = list((await session.execute(query)).scalars())
        page, more = rows[:size], len(rows) > size
        token = (
            paging.encode_token(
                {"due": page[-1].due_date.isoformat(), "id": page[-1].invoice_id}, filters
            )
            if more
            else ""
        )
        sums = await session.execute(
            select(
                PlacementCandidate.currency,
                PlacementCandidate.status,
                func.count(),
                func.coalesce(func.sum(PlacementCandidate.balance_minor), 0),
            )
            .where(
                PlacementCandidate.tenant_id == tenant_id,
                PlacementCandidate.realm_id == realm_id,
                PlacementCandidate.status.in_([PENDING, EXCLUDED]),
            )
            .group_by(PlacementCandidate.currency, PlacementCandidate.status)
        )
        waiting: dict[str, list[int]] = {}
        for currency, status, count, balance in sums.tuples():
            entry = waiting.setdefault(currency, [0, 0, 0])
            if status == PENDING:
                entry[0], entry[1] = int(count), int(balance)
            else:
                entry[2] = int(count)
        today = await company_today(session, deps, tenant_id, realm_id)
        mode = await intake_mode(session, tenant_id, provider.value)
        confirmation = await confirmations.latest(session, tenant_id, realm_id)
    return CandidatePage(
        candidates=[view(r, today) for r in page],
        next_page_token=token,
        mode=mode,
        totals=[CurrencyWaiting(c, *v) for c, v in sorted(waiting.items())],
        company_date=today,
        confirmation=confirmation,
    )


async def set_excluded(
    deps: SyncDeps,
    tenant_id: str,
    provider: Provider,
    invoice_id: str,
    *,
    exclude: bool,
    actor: str,
    reason: str,
) -> CandidateView:
    """Excludes a pending candidate, or includes an excluded one again; audited. Asking
    for the state it is already in changes nothing."""
    tenant_id = admin.validate_tenant_id(tenant_id)
    invoice_id = invoice_id.strip()
    if not invoice_id:
        raise InvalidArgument("invoice_id is required", field="invoice_id")
    if len(invoice_id) > MAX_INVOICE_ID or not invoice_id.isprintable():
        raise InvalidArgument(
            f"invoice_id must be at most {MAX_INVOICE_ID} printable characters",
            field="invoice_id",
        )
    actor, reason = require_actor_and_reason(actor, reason)
    target, source = (EXCLUDED, PENDING) if exclude else (PENDING, EXCLUDED)
    async with deps.sessions.begin() as session:
        realm_id = await tenant_realm(session, tenant_id, provider)
        row = (
            await session.execute(
                select(PlacementCandidate)
                .where(
                    PlacementCandidate.tenant_id == tenant_id,
                    PlacementCandidate.realm_id == realm_id,
                    PlacementCandidate.invoice_id == invoice_id,
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if row is None:
            raise CandidateNotFound(
                f"invoice {invoice_id} is not a placement candidate of this tenant",
                metadata={"invoice_id": invoice_id},
            )
        if row.status != target:
            if row.status != source:
                raise CandidateNotPending(
                    f"invoice {invoice_id} is {row.status}"
                    + (f" ({row.status_reason})" if row.status == DROPPED else "")
                    + f"; only a {source} candidate can be "
                    + ("excluded" if exclude else "included"),
                    metadata={"invoice_id": invoice_id, "status": row.status},
                )
            row.status, row.status_actor, row.status_reason = target, actor, reason
            session.add(
                audit(
                    tenant_id,
                    invoice_id,
                    "candidate.excluded" if exclude else "candidate.included",
                    actor,
                    reason,
                    {
                        "realm_id": realm_id,
                        "balance_minor": row.balance_minor,
                        "currency": row.currency,
                    },
                )
            )
            await session.flush()
            await session.refresh(row)
        today = await company_today(session, deps, tenant_id, realm_id)
        return view(row, today)
