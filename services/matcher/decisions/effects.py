"""The one place that turns the table's effects into rows, in the caller's transaction.

For each effect, in order: the placement's ledger is compared with what was last written
for it and only the changed columns are written (a new application, exclusion or portal
payment is inserted); then its records are written in their order: audit entries and
outbox events, out-of-band resolutions and possible double payments. Everything goes
through the :class:`~services.matcher.journal.Journal` as Core statements (no ORM rows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.matcher.decisions.snapshot import Loaded
from services.matcher.decisions.values import (
    AuditEntry,
    DoublePaymentRecorded,
    Effect,
    Ledger,
    OutreachEvent,
    PlacementState,
    Record,
    ResolutionRecorded,
    ResolutionsChanged,
    SeenPayment,
    column_names,
)
from services.matcher.journal import Journal
from services.matcher.models import (
    APPLICATIONS,
    DOUBLE_PAYMENTS,
    EXCLUSIONS,
    OOB_RESOLUTIONS,
    PAYMENTS,
    PLACEMENTS,
    PORTAL_PAYMENTS,
)


def _stored(value: Any) -> Any:
    """A value as its column stores it (JSON columns hold lists and objects)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def changed_columns(before: Any, after: Any) -> dict[str, Any]:
    """Every column whose value differs between two values of one type (all of them when
    there is no ``before``), as stored."""
    changed: dict[str, Any] = {}
    for name in column_names(type(after)):
        value = getattr(after, name)
        if before is None or getattr(before, name) != value:
            changed[name] = _stored(value)
    return changed


def write_placement(journal: Journal, before: PlacementState | None, after: PlacementState) -> None:
    """A placement's changed columns."""
    key = {"placement_id": after.placement_id}
    journal.update(PLACEMENTS, key, changed_columns(before, after))


def write_seen(journal: Journal, before: SeenPayment, after: SeenPayment) -> None:
    """A payment's record as the table left it."""
    key = {name: getattr(after, name) for name in ("tenant_id", "provider", "company_id")}
    key["payment_id"] = after.payment_id
    journal.update(PAYMENTS, key, changed_columns(before, after))


async def apply_effects(journal: Journal, loaded: Loaded, effects: Iterable[Effect]) -> None:
    """Writes every effect, in order."""
    written: dict[str, Ledger] = dict(loaded.ledgers)
    for effect in effects:
        if effect.ledger is not None:
            _write_ledger(journal, written.get(effect.ledger.id), effect.ledger)
            written[effect.ledger.id] = effect.ledger
        for record in effect.records:
            await _write_record(journal, record)


def _write_ledger(journal: Journal, before: Ledger | None, after: Ledger) -> None:
    """What changed between the ledger last written and this one. A row the ledger already
    held (loaded, or written by an earlier effect) is updated, any other inserted: the
    table only ever adds applications, exclusions and portal payments to a ledger."""
    if before is None or before.placement != after.placement:
        write_placement(journal, before.placement if before else None, after.placement)
    old_apps = before.applications if before else {}
    for pid, app in after.applications.items():
        _write_row(journal, APPLICATIONS, old_apps.get(pid), app)
    old_exclusions = before.exclusions if before else {}
    for pid, exclusion in after.exclusions.items():
        _write_row(journal, EXCLUSIONS, old_exclusions.get(pid), exclusion)
    old_portals = {q.portal_payment_id: q for q in (before.portal_payments if before else ())}
    for portal in after.portal_payments:
        _write_row(journal, PORTAL_PAYMENTS, old_portals.get(portal.portal_payment_id), portal)


def _write_row(journal: Journal, table: Any, old: Any, new: Any) -> None:
    if old == new:
        return
    changed = changed_columns(old, new)
    if old is None:
        journal.insert(table, changed)
    else:
        key = {column.name: getattr(new, column.name) for column in table.primary_key.columns}
        journal.update(table, key, changed)


async def _write_record(journal: Journal, record: Record) -> None:
    session = journal.session
    if isinstance(record, AuditEntry):
        journal.audit(record)
    elif isinstance(record, OutreachEvent):
        journal.emit(record)
    elif isinstance(record, ResolutionRecorded):
        journal.insert(
            OOB_RESOLUTIONS,
            {
                "placement_id": record.placement_id,
                "tenant_id": record.tenant_id,
                "payment_id": record.payment_id,
                "currency_code": record.currency_code,
                "amount_minor_units": record.amount_minor_units,
                "resolved_at": journal.now,
            },
        )
    elif isinstance(record, ResolutionsChanged):
        values = dict(record.values or {})
        if record.column:
            values[record.column] = journal.now
        # The resolutions this transaction recorded are among those that still stand.
        await journal.flush()
        await session.execute(
            update(OOB_RESOLUTIONS)
            .where(
                OOB_RESOLUTIONS.c.placement_id == record.placement_id,
                OOB_RESOLUTIONS.c.restored_at.is_(None),
                OOB_RESOLUTIONS.c.reclassified_at.is_(None),
            )
            .values(values)
        )
    elif isinstance(record, DoublePaymentRecorded):
        # The placement is locked, so the table's view of what was recorded is current;
        # the constraint keeps one row per (placement, payment) all the same.
        await session.execute(
            pg_insert(DOUBLE_PAYMENTS)
            .values(
                placement_id=record.placement_id,
                tenant_id=record.tenant_id,
                payment_id=record.payment_id,
                currency_code=record.currency_code,
                amount_minor_units=record.amount_minor_units,
                excess_minor_units=record.excess_minor_units,
                unapplied_minor_units=record.unapplied_minor_units,
                previous_status=record.previous_status,
                detected_at=journal.now,
            )
            .on_conflict_do_nothing(constraint="uq_double_payments_payment")
        )
    else:  # pragma: no cover - every record type is handled above
        raise TypeError(f"unknown record {record!r}")
