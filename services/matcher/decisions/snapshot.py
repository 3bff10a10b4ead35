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

from sqlalchemy import ARRAY, Row, Text, and_, any_, bindparam, literal, or_, select, text
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


def _among(column: Any, values: Any) -> Any:
    """``column = ANY(array)``: one statement text however many values (an IN list is
    rendered anew for each length), so the server's prepared statement is reused."""
    return column == any_(values)


def _ids(name: str) -> Any:
    return bindparam(name, type_=ARRAY(Text))


# The statements run at every decision are built once: SQLAlchemy then computes each one's
# cache key once, and only the parameters change.
_P, _S = PLACEMENTS.c, PAYMENTS.c
# The placements' rows of four tables in one statement (one round trip), each as an array
# of the table's own row type, which asyncpg decodes into records with the columns' types.
# Run after the placements are locked, so that, like separate reads, it sees what a
# transaction the lock waited for committed (a lock query's sub-selects would not).
_CHILDREN = text(
    f"SELECT ARRAY(SELECT a FROM {APPLICATIONS.fullname} a WHERE a.placement_id = ANY(:ids))"
    " AS applications,"
    f" ARRAY(SELECT e FROM {EXCLUSIONS.fullname} e WHERE e.placement_id = ANY(:ids))"
    " AS exclusions,"
    f" ARRAY(SELECT q FROM {PORTAL_PAYMENTS.fullname} q WHERE q.placement_id = ANY(:ids))"
    " AS portal_payments,"
    f" ARRAY(SELECT ROW(d.placement_id, d.payment_id) FROM {DOUBLE_PAYMENTS.fullname} d"
    " WHERE d.placement_id = ANY(:ids)) AS double_payments"
).bindparams(_ids("ids"))
_OF_COMPANY = and_(
    _S.tenant_id == bindparam("tenant"),
    _S.provider == bindparam("provider"),
    _S.company_id == bindparam("company"),
)
_TIMES = select(_S.payment_id, _S.provider_created_at, _S.provider_updated_at).where(
    _OF_COMPANY, _among(_S.payment_id, _ids("ids"))
)
_CARRY_UNAPPLIED = and_(
    _among(_S.customer_id, _ids("customers")),
    _S.unapplied_minor_units > 0,
    _S.state == EntityState.ACTIVE.value,
)
_UNAPPLIED = select(PAYMENTS).where(_OF_COMPANY, _CARRY_UNAPPLIED).order_by(_S.payment_id)
_UNAPPLIED_AND_PAYMENT = (
    select(PAYMENTS)
    .where(_OF_COMPANY, or_(_CARRY_UNAPPLIED, _S.payment_id == bindparam("payment_id")))
    .order_by(_S.payment_id)
)
# A payment's empty record on first sight. As text: PostgreSQL's INSERT ... ON CONFLICT
# construct has no cache key in SQLAlchemy and would be compiled at every decision.
_NEW_SEEN = (
    "tenant_id",
    "provider",
    "company_id",
    "payment_id",
    "version",
    "state",
    "currency_code",
    "total_minor_units",
    "unapplied_minor_units",
    "customer_id",
    "invoice_amounts",
    "credit_memo_ids",
    "paused_placement_ids",
    "first_seen_at",
    "updated_at",
)
_SEEN_INSERT = text(
    f"INSERT INTO {PAYMENTS.fullname} ({', '.join(_NEW_SEEN)})"
    f" VALUES ({', '.join(':' + name for name in _NEW_SEEN)})"
    " ON CONFLICT DO NOTHING RETURNING payment_id"
).bindparams(*(bindparam(name, type_=_S[name].type) for name in _NEW_SEEN))
_SEEN_LOCK = (
    select(PAYMENTS).where(_OF_COMPANY, _S.payment_id == bindparam("payment_id")).with_for_update()
)
_PLACEMENT = select(PLACEMENTS).where(_P.placement_id == bindparam("placement_id"))


def frozen(cls: type[_V], row: Any) -> _V:
    """A row (SQLAlchemy's, or a record asyncpg decoded) as its frozen value (JSON lists
    become tuples, JSON objects are copied)."""
    columns = row._mapping if isinstance(row, Row) else row
    values: dict[str, Any] = {}
    for name in column_names(cls):
        value = columns[name]
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
    stmt = select(PLACEMENTS).where(or_(*conditions)).order_by(_P.placement_id).with_for_update()
    return list(await session.execute(stmt))


async def read_placements(session: AsyncSession, *conditions: Any) -> list[PlacementRow]:
    """The same without a lock (a replay only reads)."""
    if not conditions:
        return []
    return list(await session.execute(select(PLACEMENTS).where(or_(*conditions))))


async def placement_row(session: AsyncSession, placement_id: str) -> PlacementRow | None:
    """One placement as it is now in this transaction."""
    return (await session.execute(_PLACEMENT, {"placement_id": placement_id})).first()


def of_invoices(tenant_id: str, provider: str, company_id: str, invoice_ids: Iterable[str]) -> Any:
    return and_(
        _P.tenant_id == tenant_id,
        _P.provider == provider,
        _P.company_id == company_id,
        _among(_P.invoice_id, literal(list(invoice_ids), ARRAY(Text))),
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
    children = (await session.execute(_CHILDREN, {"ids": ids})).one()
    apps: dict[str, dict[str, Application]] = defaultdict(dict)
    for record in children.applications:
        apps[record["placement_id"]][record["payment_id"]] = frozen(Application, record)
    exclusions: dict[str, dict[str, Exclusion]] = defaultdict(dict)
    for record in children.exclusions:
        exclusions[record["placement_id"]][record["payment_id"]] = frozen(Exclusion, record)
    portals: dict[str, list[PortalState]] = defaultdict(list)
    for record in children.portal_payments:
        portals[record["placement_id"]].append(frozen(PortalState, record))
    doubles: dict[str, set[str]] = defaultdict(set)
    for placement_id, payment_id_ in children.double_payments:
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
    wanted: dict[Company, set[str]] = defaultdict(set)
    for p in placements:
        wanted[(p.tenant_id, p.provider, p.company_id)].update(apps.get(p.placement_id, {}))
    found: dict[Company, dict[str, PaymentTimes]] = defaultdict(dict)
    for (tenant, provider, company), ids in sorted(wanted.items()):
        if not ids:
            continue
        params = {"tenant": tenant, "provider": provider, "company": company, "ids": sorted(ids)}
        for pid, created, updated in (await session.execute(_TIMES, params)).tuples():
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
    for (tenant, provider, company), names in sorted(customers.items()):
        params = {
            "tenant": tenant,
            "provider": provider,
            "company": company,
            "customers": sorted(names),
        }
        stmt = _UNAPPLIED
        if payment_id:
            stmt, params["payment_id"] = _UNAPPLIED_AND_PAYMENT, payment_id
        rows = await session.execute(stmt, params)
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
    inserted = await session.execute(
        _SEEN_INSERT,
        {
            "tenant_id": tenant_id,
            "provider": provider,
            "company_id": company_id,
            "payment_id": payment.payment_id,
            "version": "",
            "state": "",
            "currency_code": payment.currency,
            "total_minor_units": 0,
            "unapplied_minor_units": 0,
            "customer_id": payment.customer_id,
            "invoice_amounts": {},
            "credit_memo_ids": [],
            "paused_placement_ids": [],
            "first_seen_at": now,
            "updated_at": now,
        },
    )
    first_sight = inserted.first() is not None
    key = {
        "tenant": tenant_id,
        "provider": provider,
        "company": company_id,
        "payment_id": payment.payment_id,
    }
    record = (await session.execute(_SEEN_LOCK, key)).one()
    return frozen(SeenPayment, record), first_sight
