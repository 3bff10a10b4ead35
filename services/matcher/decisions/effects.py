"""The one place that turns the table's effects into rows, in the caller's transaction.

For each effect, in order: the placement's ledger is compared with what was last written
for it and only the changed columns are set (a new application, exclusion or portal
payment is added); then its records are written in their order: audit entries and outbox
events through the :class:`~services.matcher.journal.Journal`, out-of-band resolutions and
possible double payments as rows of their tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.matcher.decisions.snapshot import Loaded
from services.matcher.decisions.values import (
    AuditEntry,
    DoublePaymentRecorded,
    Effect,
    Ledger,
    OutreachEvent,
    Record,
    ResolutionRecorded,
    ResolutionsChanged,
    SeenPayment,
    column_names,
)
from services.matcher.journal import Journal
from services.matcher.models import (
    DoublePayment,
    OutOfBandResolution,
    PaymentApplication,
    PaymentExclusion,
    PaymentSeen,
    PortalPayment,
)

_K = TypeVar("_K")


def _stored(value: Any) -> Any:
    """A value as its column stores it (JSON columns hold lists and objects)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


def write_changes(row: Any, before: Any, after: Any) -> None:
    """Sets on ``row`` every column whose value differs between two values of its type."""
    for name in column_names(type(after)):
        value = getattr(after, name)
        if before is None or getattr(before, name) != value:
            setattr(row, name, _stored(value))


def _new_row(model: type[Any], value: Any) -> Any:
    return model(**{name: _stored(getattr(value, name)) for name in column_names(type(value))})


def write_seen(loaded: Loaded, before: SeenPayment, after: SeenPayment) -> None:
    """A payment's record as the table left it."""
    row = loaded.rows.seen
    assert isinstance(row, PaymentSeen)
    write_changes(row, before, after)


async def apply_effects(journal: Journal, loaded: Loaded, effects: Iterable[Effect]) -> None:
    """Writes every effect, in order."""
    written: dict[str, Ledger] = dict(loaded.ledgers)
    for effect in effects:
        if effect.ledger is not None:
            _write_ledger(journal, loaded, written.get(effect.ledger.id), effect.ledger)
            written[effect.ledger.id] = effect.ledger
        for record in effect.records:
            await _write_record(journal, record)


def _write_ledger(journal: Journal, loaded: Loaded, before: Ledger | None, after: Ledger) -> None:
    rows = loaded.rows
    session = journal.session
    if before is None or before.placement != after.placement:
        write_changes(
            rows.placements[after.id], before.placement if before else None, after.placement
        )
    old_apps = before.applications if before else {}
    for pid, app in after.applications.items():
        if old_apps.get(pid) == app:
            continue
        key = (app.placement_id, pid)
        if key in rows.applications:
            write_changes(rows.applications[key], old_apps.get(pid), app)
        else:
            rows.applications[key] = _new_row(PaymentApplication, app)
            session.add(rows.applications[key])
    old_exclusions = before.exclusions if before else {}
    for pid, exclusion in after.exclusions.items():
        if old_exclusions.get(pid) == exclusion:
            continue
        key = (exclusion.placement_id, pid)
        if key in rows.exclusions:
            write_changes(rows.exclusions[key], old_exclusions.get(pid), exclusion)
        else:
            rows.exclusions[key] = _new_row(PaymentExclusion, exclusion)
            session.add(rows.exclusions[key])
    old_portals = {q.portal_payment_id: q for q in (before.portal_payments if before else ())}
    for portal in after.portal_payments:
        old = old_portals.get(portal.portal_payment_id)
        if old == portal:
            continue
        if portal.portal_payment_id in rows.portal_payments:
            write_changes(rows.portal_payments[portal.portal_payment_id], old, portal)
        else:
            rows.portal_payments[portal.portal_payment_id] = _new_row(PortalPayment, portal)
            session.add(rows.portal_payments[portal.portal_payment_id])


async def _write_record(journal: Journal, record: Record) -> None:
    session = journal.session
    if isinstance(record, AuditEntry):
        journal.audit(record)
    elif isinstance(record, OutreachEvent):
        journal.emit(record)
    elif isinstance(record, ResolutionRecorded):
        session.add(
            OutOfBandResolution(
                placement_id=record.placement_id,
                tenant_id=record.tenant_id,
                payment_id=record.payment_id,
                currency_code=record.currency_code,
                amount_minor_units=record.amount_minor_units,
                resolved_at=journal.now,
            )
        )
    elif isinstance(record, ResolutionsChanged):
        values = dict(record.values or {})
        if record.column:
            values[record.column] = journal.now
        await session.execute(
            update(OutOfBandResolution)
            .where(
                OutOfBandResolution.placement_id == record.placement_id,
                OutOfBandResolution.restored_at.is_(None),
                OutOfBandResolution.reclassified_at.is_(None),
            )
            .values(values)
        )
    elif isinstance(record, DoublePaymentRecorded):
        # The placement is locked, so the table's view of what was recorded is current;
        # the constraint keeps one row per (placement, payment) all the same.
        await session.execute(
            pg_insert(DoublePayment)
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
