"""Everything a decision reads, loaded (and locked) in one place, as frozen values.

Placements are locked ``FOR UPDATE`` in placement-id order, so concurrent decisions never
deadlock; a payment's own record is locked too. For each placement the loader reads the
rows the rules look at (payment applications, exclusions, portal payments, recorded
double payments, when QBO says each applied payment was made, and the customer's payments
that may carry unapplied money) in one statement per table for all placements.

Rows are read with SQLAlchemy Core statements (no ORM instances, no identity map) and
become the frozen values at once; ``effects.py`` writes the changes back by primary key.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Row, and_, or_, select, tuple_
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.matcher.decisions.values import (
    Application,
    Context,
    Exclusion,
    Ledger,
    PaymentTimes,
    PlacementState,
    PortalState,
    SeenPayment,
    column_names,
)
from services.matcher.domain import EntityState, PaymentIn
from services.matcher.models import (
    APPLICATIONS,
    DOUBLE_PAYMENTS,
    EXCLUSIONS,
    PAYMENTS,
    PLACEMENTS,
    PORTAL_PAYMENTS,
)
from services.matcher.settings import AMOUNT_TOLERANCE, MATCH_WINDOW, get_matching_settings

_V = TypeVar("_V")
# (tenant, provider, company): whose books a payment belongs to.
Company = tuple[str, str, str]
# A placement as read (every column of ``matching.placements``).
PlacementRow = Row[Any]


def frozen(cls: type[_V], row: Any) -> _V:
    """A row as its frozen value (JSON lists become tuples, JSON objects are copied)."""
    values: dict[str, Any] = {}
    for name in column_names(cls):
        value = getattr(row, name)
        if isinstance(value, list):
            value = tuple(value)
        elif isinstance(value, dict):
            value = dict(value)
        values[name] = value
    return cls(**values)


async def load_context(session: AsyncSession) -> Context:
    """The matching settings read at decision time, and the decision's time."""
    settings = await get_matching_settings(session)
    return Context(
        tolerance=int(settings.values[AMOUNT_TOLERANCE.key]),
        window=timedelta(minutes=int(settings.values[MATCH_WINDOW.key])),
        now=datetime.now(UTC),
    )


@dataclass
class Loaded:
    """The ledgers of the placements a decision concerns."""

    ledgers: dict[str, Ledger]

    def ordered(self) -> list[Ledger]:
        return [self.ledgers[pid] for pid in sorted(self.ledgers)]

    def merge(self, other: Loaded) -> None:
        self.ledgers.update(other.ledgers)


async def lock_placements(session: AsyncSession, *conditions: Any) -> list[PlacementRow]:
    """Locks matching placements in id order, so concurrent decisions never deadlock."""
    if not conditions:
        return []
    stmt = (
        select(PLACEMENTS)
        .where(or_(*conditions))
        .order_by(PLACEMENTS.c.placement_id)
        .with_for_update()
    )
    return list(await session.execute(stmt))


async def read_placements(session: AsyncSession, *conditions: Any) -> list[PlacementRow]:
    """The same without a lock (a replay only reads)."""
    if not conditions:
        return []
    return list(await session.execute(select(PLACEMENTS).where(or_(*conditions))))


async def placement_row(session: AsyncSession, placement_id: str) -> PlacementRow | None:
    """One placement as it is now in this transaction."""
    stmt = select(PLACEMENTS).where(PLACEMENTS.c.placement_id == placement_id)
    return (await session.execute(stmt)).first()


def of_invoices(tenant_id: str, provider: str, company_id: str, invoice_ids: Iterable[str]) -> Any:
    return and_(
        PLACEMENTS.c.tenant_id == tenant_id,
        PLACEMENTS.c.provider == provider,
        PLACEMENTS.c.company_id == company_id,
        PLACEMENTS.c.invoice_id.in_(list(invoice_ids)),
    )


async def load_ledgers(
    session: AsyncSession, placements: Sequence[PlacementRow], *, payment_id: str = ""
) -> Loaded:
    """The ledger of each placement. ``payment_id``: a payment being decided, whose record
    is included among every customer's unapplied payments (the table puts its new version
    in its place, in the database's order of ids)."""
    if not placements:
        return Loaded({})
    ids = [p.placement_id for p in placements]
    apps: dict[str, dict[str, Application]] = defaultdict(dict)
    for row in await session.execute(
        select(APPLICATIONS).where(APPLICATIONS.c.placement_id.in_(ids))
    ):
        apps[row.placement_id][row.payment_id] = frozen(Application, row)
    exclusions: dict[str, dict[str, Exclusion]] = defaultdict(dict)
    for row in await session.execute(select(EXCLUSIONS).where(EXCLUSIONS.c.placement_id.in_(ids))):
        exclusions[row.placement_id][row.payment_id] = frozen(Exclusion, row)
    portals: dict[str, list[PortalState]] = defaultdict(list)
    for row in await session.execute(
        select(PORTAL_PAYMENTS).where(PORTAL_PAYMENTS.c.placement_id.in_(ids))
    ):
        portals[row.placement_id].append(frozen(PortalState, row))
    doubles: dict[str, set[str]] = defaultdict(set)
    for placement_id, payment_id_ in (
        await session.execute(
            select(DOUBLE_PAYMENTS.c.placement_id, DOUBLE_PAYMENTS.c.payment_id).where(
                DOUBLE_PAYMENTS.c.placement_id.in_(ids)
            )
        )
    ).tuples():
        doubles[placement_id].add(payment_id_)
    times = await _payment_times(session, placements, apps)
    unapplied = await _unapplied_payments(session, placements, payment_id)

    ledgers: dict[str, Ledger] = {}
    for p in placements:
        key = (p.tenant_id, p.provider, p.company_id)
        own = apps.get(p.placement_id, {})
        ledgers[p.placement_id] = Ledger(
            placement=frozen(PlacementState, p),
            applications=own,
            exclusions=exclusions.get(p.placement_id, {}),
            portal_payments=tuple(portals.get(p.placement_id, ())),
            double_payment_ids=frozenset(doubles.get(p.placement_id, ())),
            payment_times={pid: times[key][pid] for pid in own if pid in times.get(key, {})},
            unapplied=tuple(
                s
                for s in unapplied.get(key, ())
                if s.customer_id == p.customer_id or s.payment_id == payment_id
            ),
        )
    return Loaded(ledgers)


async def _payment_times(
    session: AsyncSession,
    placements: Sequence[PlacementRow],
    apps: Mapping[str, Mapping[str, Application]],
) -> dict[Company, dict[str, PaymentTimes]]:
    """When the provider says each payment applied to the placements was made and last
    changed."""
    wanted = {
        (p.tenant_id, p.provider, p.company_id, pid)
        for p in placements
        for pid in apps.get(p.placement_id, {})
    }
    found: dict[Company, dict[str, PaymentTimes]] = defaultdict(dict)
    if not wanted:
        return found
    c = PAYMENTS.c
    rows = await session.execute(
        select(
            c.tenant_id,
            c.provider,
            c.company_id,
            c.payment_id,
            c.provider_created_at,
            c.provider_updated_at,
        ).where(tuple_(c.tenant_id, c.provider, c.company_id, c.payment_id).in_(sorted(wanted)))
    )
    for tenant, provider, company, pid, created, updated in rows.tuples():
        found[(tenant, provider, company)][pid] = PaymentTimes(created, updated)
    return found


async def _unapplied_payments(
    session: AsyncSession, placements: Sequence[PlacementRow], payment_id: str
) -> dict[Company, list[SeenPayment]]:
    """Per company, the payments seen from the placements' customers that carry unapplied
    money, plus the payment being decided, in the database's order of payment ids."""
    found: dict[Company, list[SeenPayment]] = defaultdict(list)
    customers: dict[Company, set[str]] = defaultdict(set)
    for p in placements:
        if p.customer_id:
            customers[(p.tenant_id, p.provider, p.company_id)].add(p.customer_id)
    c = PAYMENTS.c
    for (tenant, provider, company), names in sorted(customers.items()):
        condition = and_(
            c.customer_id.in_(sorted(names)),
            c.unapplied_minor_units > 0,
            c.state == EntityState.ACTIVE.value,
        )
        if payment_id:
            condition = or_(condition, c.payment_id == payment_id)
        rows = await session.execute(
            select(PAYMENTS)
            .where(
                c.tenant_id == tenant, c.provider == provider, c.company_id == company, condition
            )
            .order_by(c.payment_id)
        )
        found[(tenant, provider, company)] = [frozen(SeenPayment, s) for s in rows]
    return found


async def lock_seen_payment(
    session: AsyncSession,
    tenant_id: str,
    provider: str,
    company_id: str,
    payment: PaymentIn,
    now: datetime,
) -> tuple[SeenPayment, bool]:
    """The payment's record, created empty on first sight, locked; and whether it is new."""
    c = PAYMENTS.c
    inserted = await session.execute(
        pg_insert(PAYMENTS)
        .values(
            tenant_id=tenant_id,
            provider=provider,
            company_id=company_id,
            payment_id=payment.payment_id,
            version="",
            state="",
            currency_code=payment.currency,
            total_minor_units=0,
            unapplied_minor_units=0,
            customer_id=payment.customer_id,
            invoice_amounts={},
            credit_memo_ids=[],
            paused_placement_ids=[],
            first_seen_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(c.payment_id)
    )
    first_sight = inserted.first() is not None
    record = (
        await session.execute(
            select(PAYMENTS)
            .where(
                c.tenant_id == tenant_id,
                c.provider == provider,
                c.company_id == company_id,
                c.payment_id == payment.payment_id,
            )
            .with_for_update()
        )
    ).one()
    return frozen(SeenPayment, record), first_sight
