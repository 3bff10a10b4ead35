"""Each tenant's daily-report settings: the time zone whose midnight ends its report day and
its contingency-fee terms. Stored in ``matching.tenant_report_settings``; every change is
audited (``tenant_report_settings.updated``, the values before and after)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import require_actor_and_reason
from services.matcher.domain import FeeTerms, FeeTreatment, ReportSettings
from services.matcher.models import AuditEvent, TenantReportSettings


def _terms(row: TenantReportSettings | None) -> FeeTerms | None:
    if row is None or row.contingency_fee_bp is None:
        return None
    assert row.oob_fee_treatment is not None
    assert row.oob_fee_bp is not None
    return FeeTerms(row.contingency_fee_bp, FeeTreatment(row.oob_fee_treatment), row.oob_fee_bp)


def _settings(
    tenant_id: str, row: TenantReportSettings | None, default_zone: str
) -> ReportSettings:
    zone = row.time_zone if row is not None and row.time_zone else None
    return ReportSettings(
        tenant_id=tenant_id,
        time_zone=zone or default_zone,
        zone_is_default=zone is None,
        terms=_terms(row),
        updated_at=row.updated_at if row is not None else None,
        updated_by=row.updated_by if row is not None else "",
    )


async def all_report_settings(
    session: AsyncSession, default_zone: str
) -> dict[str, tuple[ReportSettings, datetime]]:
    """Every tenant with stored settings: its settings and when they were first stored."""
    rows = (await session.execute(select(TenantReportSettings))).scalars()
    return {r.tenant_id: (_settings(r.tenant_id, r, default_zone), r.created_at) for r in rows}


async def get_report_settings(
    session: AsyncSession, tenant_id: str, default_zone: str
) -> ReportSettings:
    row = await session.get(TenantReportSettings, tenant_id)
    return _settings(tenant_id, row, default_zone)


def _audit_terms(terms: FeeTerms | None) -> dict[str, Any] | None:
    return None if terms is None else {k: str(v) for k, v in asdict(terms).items()}


async def update_report_settings(
    session: AsyncSession,
    tenant_id: str,
    *,
    time_zone: str | None,
    terms: FeeTerms | None,
    actor: str,
    reason: str,
    default_zone: str,
) -> ReportSettings:
    """Sets the given values (None: unchanged); validated by the caller. Writing the stored
    values again changes nothing and records nothing."""
    actor, reason = require_actor_and_reason(actor, reason)
    row = await session.get(TenantReportSettings, tenant_id, with_for_update=True)
    before = _settings(tenant_id, row, default_zone)
    now = datetime.now(UTC)
    if row is None:
        row = TenantReportSettings(tenant_id=tenant_id, version=0, created_at=now)
        session.add(row)
    changes: dict[str, Any] = {}
    if time_zone is not None and time_zone != row.time_zone:
        changes["time_zone"] = {"old": row.time_zone or "", "new": time_zone}
        row.time_zone = time_zone
    if terms is not None and terms != before.terms:
        changes["fee_terms"] = {"old": _audit_terms(before.terms), "new": _audit_terms(terms)}
        row.contingency_fee_bp = terms.contingency_bp
        row.oob_fee_treatment = terms.oob_treatment.value
        row.oob_fee_bp = terms.oob_reduced_bp
    if not changes:
        if row.version == 0:  # nothing stored and nothing to store
            session.expunge(row)
        return before
    row.version += 1
    row.updated_at = now
    row.updated_by = actor
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            subject_type="tenant_report_settings",
            subject_id=tenant_id,
            action="tenant_report_settings.updated",
            actor=actor,
            reason=reason,
            details={**changes, "version": row.version},
            created_at=now,
        )
    )
    await session.flush()
    return _settings(tenant_id, row, default_zone)
