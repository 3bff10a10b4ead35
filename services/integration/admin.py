"""Tenant flags and the platform settings this service owns, every change audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import (
    SettingSpec,
    SettingsSnapshot,
    read_settings,
    require_actor_and_reason,
    write_settings,
)
from aicollect.errors import FailedPrecondition, InvalidArgument
from services.integration.models import AuditEvent, PlatformSetting, Tenant

KILL_SWITCH = SettingSpec(
    "qbo_kill_switch",
    bool,
    False,
    description=(
        "Stops every outbound call to Intuit and new connections; webhooks keep being stored."
    ),
)
PLATFORM_SPECS = (KILL_SWITCH,)

MAX_TENANT_ID = 128


class IntegrationDisabled(FailedPrecondition):
    default_reason = "INTEGRATION_DISABLED"


def validate_tenant_id(tenant_id: str) -> str:
    tenant_id = tenant_id.strip()
    if not tenant_id:
        raise InvalidArgument("tenant_id is required", field="tenant_id")
    if len(tenant_id) > MAX_TENANT_ID or not tenant_id.isprintable():
        raise InvalidArgument(
            f"tenant_id must be printable and at most {MAX_TENANT_ID} characters",
            field="tenant_id",
        )
    return tenant_id


@dataclass(frozen=True)
class TenantFlags:
    tenant_id: str
    qbo_enabled: bool
    update_time: datetime | None = None


async def get_tenant_flags(session: AsyncSession, tenant_id: str) -> TenantFlags:
    tenant_id = validate_tenant_id(tenant_id)
    row = await session.get(Tenant, tenant_id)
    if row is None:
        return TenantFlags(tenant_id, False)
    return TenantFlags(tenant_id, row.qbo_enabled, row.updated_at)


async def set_tenant_flags(
    session: AsyncSession, tenant_id: str, *, qbo_enabled: bool, actor: str, reason: str
) -> TenantFlags:
    tenant_id = validate_tenant_id(tenant_id)
    actor, reason = require_actor_and_reason(actor, reason)
    row = (
        await session.execute(select(Tenant).where(Tenant.tenant_id == tenant_id).with_for_update())
    ).scalar_one_or_none()
    old = bool(row and row.qbo_enabled)
    if row is None:
        session.add(Tenant(tenant_id=tenant_id, qbo_enabled=qbo_enabled, updated_by=actor))
    else:
        row.qbo_enabled = qbo_enabled
        row.updated_by = actor
        if old != qbo_enabled:
            row.updated_at = func.now()
    if old != qbo_enabled:
        session.add(
            AuditEvent(
                tenant_id=tenant_id,
                subject_type="tenant",
                subject_id=tenant_id,
                action="tenant.qbo_enabled.changed",
                actor=actor,
                reason=reason,
                details={"key": "qbo_enabled", "old": old, "new": qbo_enabled},
            )
        )
    await session.flush()
    session.expire_all()
    return await get_tenant_flags(session, tenant_id)


async def get_platform_settings(session: AsyncSession) -> SettingsSnapshot:
    return await read_settings(session, PlatformSetting, PLATFORM_SPECS)


async def update_platform_settings(
    session: AsyncSession, changes: dict[str, object], *, actor: str, reason: str
) -> SettingsSnapshot:
    return await write_settings(
        session,
        PlatformSetting,
        AuditEvent,
        PLATFORM_SPECS,
        changes,
        actor=actor,
        reason=reason,
        subject_type="platform_setting",
    )


async def kill_switch_on(session: AsyncSession) -> bool:
    return bool((await get_platform_settings(session)).values[KILL_SWITCH.key])


async def require_enabled(session: AsyncSession, tenant_id: str) -> None:
    """The one enabled/kill-switch check: raises IntegrationDisabled (FAILED_PRECONDITION)
    saying which, when the tenant is not enabled or the platform-wide kill switch is on."""
    if not (await get_tenant_flags(session, tenant_id)).qbo_enabled:
        raise IntegrationDisabled(
            "QuickBooks Online is not enabled for this tenant (qbo_enabled is off); "
            "ask support@moderncollections.io to enable it",
            metadata={"tenant_id": tenant_id},
        )
    if await kill_switch_on(session):
        raise IntegrationDisabled(
            "the QuickBooks integration is paused platform-wide (qbo_kill_switch is on)",
            reason="KILL_SWITCH_ON",
        )
