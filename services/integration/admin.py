"""Tenant flags and the platform settings this service owns, every change audited."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
from aicollect.provider import SUPPORTED, Provider, require_name
from services.integration.models import AuditEvent, PlatformSetting, Tenant, TenantProvider


class IntegrationDisabled(FailedPrecondition):
    default_reason = "INTEGRATION_DISABLED"


def kill_switch_spec(provider: Provider) -> SettingSpec:
    """The platform kill switch of one provider (``qbo_kill_switch``), a platform setting."""
    return SettingSpec(
        provider.kill_switch_key,
        bool,
        False,
        description=(
            f"Stops every outbound call to {provider.label} and new connections; "
            "webhooks keep being stored."
        ),
    )


KILL_SWITCHES = {provider: kill_switch_spec(provider) for provider in SUPPORTED}
KILL_SWITCH = KILL_SWITCHES[Provider.QBO]  # ``qbo_kill_switch``
PLATFORM_SPECS = tuple(KILL_SWITCHES.values())

MAX_TENANT_ID = 128


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
    """A tenant's enabled flag for every supported provider (False when never set)."""

    tenant_id: str
    enabled: Mapping[Provider, bool] = field(default_factory=dict)
    update_time: datetime | None = None

    def is_enabled(self, provider: Provider) -> bool:
        return bool(self.enabled.get(provider, False))

    @property
    def qbo_enabled(self) -> bool:
        return self.is_enabled(Provider.QBO)


async def get_tenant_flags(session: AsyncSession, tenant_id: str) -> TenantFlags:
    tenant_id = validate_tenant_id(tenant_id)
    rows = (
        await session.execute(select(TenantProvider).where(TenantProvider.tenant_id == tenant_id))
    ).scalars()
    stored = {row.provider: row for row in rows}
    enabled = {p: bool(stored[p.value].enabled) if p.value in stored else False for p in SUPPORTED}
    times = [row.updated_at for row in stored.values()]
    return TenantFlags(tenant_id, enabled, max(times) if times else None)


def tenant_changes(qbo_enabled: bool, provider_enabled: Mapping[str, bool]) -> dict[Provider, bool]:
    """What SetTenantSettings asks to change: QBO's flag from ``qbo_enabled`` alone, or
    exactly the providers named in ``provider_enabled`` (which ``qbo_enabled`` must agree
    with, or be false when QBO is not named: an unset proto3 bool reads as false)."""
    if not provider_enabled:
        return {Provider.QBO: qbo_enabled}
    changes = {require_name(name): bool(value) for name, value in provider_enabled.items()}
    if qbo_enabled and not changes.get(Provider.QBO, False):
        raise InvalidArgument(
            "qbo_enabled contradicts provider_enabled; set QBO's flag in one of them only",
            field="qbo_enabled",
        )
    return changes


async def set_tenant_flags(
    session: AsyncSession,
    tenant_id: str,
    *,
    enabled: Mapping[Provider, bool],
    actor: str,
    reason: str,
) -> TenantFlags:
    """Sets the named providers' flags, the others unchanged; audits each change as the
    setting ``<provider>_enabled`` (``qbo_enabled`` for QBO)."""
    tenant_id = validate_tenant_id(tenant_id)
    actor, reason = require_actor_and_reason(actor, reason)
    changes = dict(enabled)
    unsupported = [p for p in changes if p not in SUPPORTED]
    if unsupported:
        raise InvalidArgument(
            f"provider {unsupported[0].value} is not supported by this deployment",
            field="provider",
        )
    tenant = (
        await session.execute(select(Tenant).where(Tenant.tenant_id == tenant_id).with_for_update())
    ).scalar_one_or_none()
    if tenant is None:
        session.add(Tenant(tenant_id=tenant_id, updated_by=actor))
        await session.flush()
    rows = {
        row.provider: row
        for row in (
            await session.execute(
                select(TenantProvider)
                .where(TenantProvider.tenant_id == tenant_id)
                .with_for_update()
            )
        ).scalars()
    }
    changed = False
    for provider, new in changes.items():
        row = rows.get(provider.value)
        old = bool(row and row.enabled)
        if row is None:
            session.add(
                TenantProvider(
                    tenant_id=tenant_id, provider=provider.value, enabled=new, updated_by=actor
                )
            )
        elif old != new:
            row.enabled = new
            row.updated_by = actor
            row.updated_at = func.now()
        if old != new:
            changed = True
            key = provider.enabled_key
            session.add(
                AuditEvent(
                    tenant_id=tenant_id,
                    subject_type="tenant",
                    subject_id=tenant_id,
                    action=f"tenant.{key}.changed",
                    actor=actor,
                    reason=reason,
                    details={"key": key, "old": old, "new": new, "provider": provider.value},
                )
            )
    if changed and tenant is not None:
        tenant.updated_by = actor
        tenant.updated_at = func.now()
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


async def kill_switch_on(session: AsyncSession, provider: Provider = Provider.QBO) -> bool:
    """Whether ``provider``'s platform kill switch is on (QBO's when not named)."""
    return bool((await get_platform_settings(session)).values[KILL_SWITCHES[provider].key])


async def ensure_enabled(session: AsyncSession, tenant_id: str, provider: Provider) -> None:
    """The one gate of a tenant's use of a provider: its enabled flag, then the provider's
    kill switch. FAILED_PRECONDITION (``INTEGRATION_DISABLED`` / ``KILL_SWITCH_ON``)."""
    if not (await get_tenant_flags(session, tenant_id)).is_enabled(provider):
        raise IntegrationDisabled(
            f"{provider.label} is not enabled for this tenant ({provider.enabled_key} is off); "
            "ask support@moderncollections.io to enable it",
            metadata={"tenant_id": tenant_id, "provider": provider.value},
        )
    if await kill_switch_on(session, provider):
        raise IntegrationDisabled(
            f"the {provider.label} integration is paused platform-wide "
            f"({provider.kill_switch_key} is on)",
            reason="KILL_SWITCH_ON",
            metadata={"provider": provider.value},
        )
