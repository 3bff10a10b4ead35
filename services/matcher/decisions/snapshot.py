"""Everything a decision reads, loaded (and locked) in one place, as frozen values.

Placements are locked ``FOR UPDATE`` in placement-id order, so concurrent decisions never
deadlock; a payment's own record is locked too. For each placement the loader reads the
rows the rules look at (payment applications, exclusions, portal payments, recorded
double payments, when QBO says each applied payment was made, and the customer's payments
that may carry unapplied money) in one statement per table for all placements.

The ORM rows stay here and in ``effects.py`` (:class:`Rows`); the table only sees values.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, or_, select, tuple_
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
    DoublePayment,
    PaymentApplication,
    PaymentExclusion,
    PaymentSeen,
    Placement,
    PortalPayment,
)
from services.matcher.settings import AMOUNT_TOLERANCE, MATCH_WINDOW, get_matching_settings

_V = TypeVar("_V")
# (tenant, provider, company): whose books a payment belongs to.
Company = tuple[str, str, str]


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
class Rows:
    """The ORM rows behind the values, for ``effects.py`` to write to."""

    placements: dict[str, Placement] = field(default_factory=dict)
    applications: dict[tuple[str, str], PaymentApplication] = field(default_factory=dict)
    exclusions: dict[tuple[str, str], PaymentExclusion] = field(default_factory=dict)
    portal_payments: dict[str, PortalPayment] = field(default_factory=dict)
    seen: PaymentSeen | None = None


@dataclass
class Loaded:
    """The ledgers of the placements a decision concerns, and their rows."""

    ledgers: dict[str, Ledger]
    rows: Rows

    def ordered(self) -> list[Ledger]:
        return [self.ledgers[pid] for pid in sorted(self.ledgers)]

    def merge(self, other: Loaded) -> None:
        self.ledgers.update(other.ledgers)
        self.rows.placements.update(other.rows.placements)
        self.rows.applications.update(other.rows.applications)
        self.rows.exclusions.update(other.rows.exclusions)
        self.rows.portal_payments.update(other.rows.portal_payments)


async def lock_placements(session: AsyncSession, *conditions: Any) -> list[Placement]:
    """Locks matching placements in id order, so concurrent decisions never deadlock."""
    if not conditions:
        return []
    stmt = (
        select(Placement)
        .where(or_(*conditions))
        .order_by(Placement.placement_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list((await session.execute(stmt)).scalars())


async def read_placements(session: AsyncSession, *conditions: Any) -> list[Placement]:
    """The same without a lock (a replay only reads)."""
    if not conditions:
        return []
    return list((await session.execute(select(Placement).where(or_(*conditions)))).scalars())


def of_invoices(tenant_id: str, provider: str, company_id: str, invoice_ids: Iterable[str]) -> Any:
    return and_(
        Placement.tenant_id == tenant_id,
        Placement.provider == provider,
        Placement.company_id == company_id,
        Placement.invoice_id.in_(list(invoice_ids)),
    )


async def load_ledgers(
    session: AsyncSession, placements: Sequence[Placement], *, payment_id: str = ""
) -> Loaded:
    """The ledger of each placement. ``payment_id``: a payment being decided, whose record
    is included among every customer's unapplied payments (the table puts its new version
    in its place, in the database's order of ids)."""
    rows = Rows(placements={p.placement_id: p for p in placements})
    if not placements:
        return Loaded({}, rows)
    ids = list(rows.placements)
    apps: dict[str, dict[str, Application]] = defaultdict(dict)
    for app in (
        await session.execute(
            select(PaymentApplication).where(PaymentApplication.placement_id.in_(ids))
        )
    ).scalars():
        rows.applications[(app.placement_id, app.payment_id)] = app
        apps[app.placement_id][app.payment_id] = frozen(Application, app)
    exclusions: dict[str, dict[str, Exclusion]] = defaultdict(dict)
    for exclusion in (
        await session.execute(
            select(PaymentExclusion).where(PaymentExclusion.placement_id.in_(ids))
        )
    ).scalars():
        rows.exclusions[(exclusion.placement_id, exclusion.payment_id)] = exclusion
        exclusions[exclusion.placement_id][exclusion.payment_id] = frozen(Exclusion, exclusion)
    portals: dict[str, list[PortalState]] = defaultdict(list)
    for portal in (
        await session.execute(select(PortalPayment).where(PortalPayment.placement_id.in_(ids)))
    ).scalars():
        rows.portal_payments[portal.portal_payment_id] = portal
        portals[portal.placement_id].append(frozen(PortalState, portal))
    doubles: dict[str, set[str]] = defaultdict(set)
    for placement_id, payment_id in (
        await session.execute(
            select(DoublePayment.placement_id, DoublePayment.payment_id).where(
                DoublePayment.placement_id.in_(ids)
            )
        )
    ).tuples():
        doubles[placement_id].add(payment_id)
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
    return Loaded(ledgers, rows)


async def _payment_times(
    session: AsyncSession,
    placements: Sequence[Placement],
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
    rows = await session.execute(
        select(
            PaymentSeen.tenant_id,
            PaymentSeen.provider,
            PaymentSeen.company_id,
            PaymentSeen.payment_id,
            PaymentSeen.provider_created_at,
            PaymentSeen.provider_updated_at,
        ).where(
            tuple_(
                PaymentSeen.tenant_id,
                PaymentSeen.provider,
                PaymentSeen.company_id,
                PaymentSeen.payment_id,
            ).in_(sorted(wanted))
        )
    )
    for tenant, provider, company, pid, created, updated in rows.tuples():
        found[(tenant, provider, company)][pid] = PaymentTimes(created, updated)
    return found


async def _unapplied_payments(
    session: AsyncSession, placements: Sequence[Placement], payment_id: str
) -> dict[Company, list[SeenPayment]]:
    """Per company, the payments seen from the placements' customers that carry unapplied
    money, plus the payment being decided, in the database's order of payment ids."""
    found: dict[Company, list[SeenPayment]] = defaultdict(list)
    customers: dict[Company, set[str]] = defaultdict(set)
    for p in placements:
        if p.customer_id:
            customers[(p.tenant_id, p.provider, p.company_id)].add(p.customer_id)
    for (tenant, provider, company), names in sorted(customers.items()):
        condition = and_(
            PaymentSeen.customer_id.in_(sorted(names)),
            PaymentSeen.unapplied_minor_units > 0,
            PaymentSeen.state == EntityState.ACTIVE.value,
        )
        if payment_id:
            condition = or_(condition, PaymentSeen.payment_id == payment_id)
        rows = await session.execute(
            select(PaymentSeen)
            .where(
                PaymentSeen.tenant_id == tenant,
                PaymentSeen.provider == provider,
                PaymentSeen.company_id == company,
                condition,
            )
            .order_by(PaymentSeen.payment_id)
        )
        found[(tenant, provider, company)] = [frozen(SeenPayment, s) for s in rows.scalars()]
    return found


async def lock_seen_payment(
    session: AsyncSession,
    tenant_id: str,
    provider: str,
    company_id: str,
    payment: PaymentIn,
    now: datetime,
) -> tuple[PaymentSeen, bool]:
    """The payment's record, created empty on first sight, locked; and whether it is new."""
    inserted = await session.execute(
        pg_insert(PaymentSeen)
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
        .returning(PaymentSeen.payment_id)
    )
    first_sight = inserted.first() is not None
    record = (
        await session.execute(
            select(PaymentSeen)
            .where(
                PaymentSeen.tenant_id == tenant_id,
                PaymentSeen.provider == provider,
                PaymentSeen.company_id == company_id,
                PaymentSeen.payment_id == payment.payment_id,
            )
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    return record, first_sight
