"""Typed settings kept in a service's own ``settings`` table, every change audited.

Used by the integration service (platform settings such as the kill switch) and the
matcher (matching tolerance and window): each owns its keys, this is the one mechanism.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.errors import InvalidArgument

SettingValue = bool | int


@dataclass(frozen=True)
class SettingSpec:
    key: str
    kind: type[bool] | type[int]
    default: SettingValue
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    def validate(self, value: object) -> SettingValue:
        if self.kind is bool:
            if not isinstance(value, bool):
                raise InvalidArgument(f"{self.key} must be true or false", field=self.key)
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidArgument(f"{self.key} must be an integer", field=self.key)
        if self.minimum is not None and value < self.minimum:
            raise InvalidArgument(f"{self.key} must be at least {self.minimum}", field=self.key)
        if self.maximum is not None and value > self.maximum:
            raise InvalidArgument(f"{self.key} must be at most {self.maximum}", field=self.key)
        return value


class SettingRow(Protocol):
    __table__: ClassVar[Any]
    key: Any
    value: Any
    version: Any
    updated_by: Any
    updated_at: Any


class AuditRow(Protocol):
    def __init__(self, **kwargs: Any) -> None: ...


def check_text(value: str, field: str, max_len: int) -> str:
    """Free text we store (actors, reasons): stripped, bounded, no NUL (PostgreSQL refuses it)."""
    value = value.strip()
    if "\x00" in value:
        raise InvalidArgument(f"{field} must not contain NUL characters", field=field)
    if len(value) > max_len:
        raise InvalidArgument(f"{field} is at most {max_len} characters", field=field)
    return value


def require_actor_and_reason(actor: str, reason: str) -> tuple[str, str]:
    actor, reason = actor.strip(), reason.strip()
    if not actor:
        raise InvalidArgument("actor is required (who is making this change)", field="actor")
    if not reason:
        raise InvalidArgument("reason is required (why this change is made)", field="reason")
    if "\x00" in actor or "\x00" in reason or not actor.isprintable():
        raise InvalidArgument(
            "actor must be printable and neither may contain NUL characters", field="actor"
        )
    if len(actor) > 200 or len(reason) > 2000:
        raise InvalidArgument("actor or reason too long (200 / 2000 characters)", field="reason")
    return actor, reason


@dataclass(frozen=True)
class SettingsSnapshot:
    """Every setting's value (defaults filled in) and who changed any of them last, when."""

    values: dict[str, SettingValue]
    update_time: datetime | None
    update_actor: str


async def read_settings(
    session: AsyncSession, model: type[SettingRow], specs: Sequence[SettingSpec]
) -> SettingsSnapshot:
    # A Core read of the table (rows, not ORM instances): the matcher reads its settings at
    # every decision.
    rows = (await session.execute(select(model.__table__))).all()
    stored = {row.key: row for row in rows}
    values = {
        spec.key: stored[spec.key].value if spec.key in stored else spec.default for spec in specs
    }
    latest = max(rows, key=lambda row: row.updated_at, default=None)
    return SettingsSnapshot(
        values,
        latest.updated_at if latest is not None else None,
        latest.updated_by if latest is not None else "",
    )


async def write_settings(
    session: AsyncSession,
    model: type[SettingRow],
    audit_model: type[AuditRow],
    specs: Sequence[SettingSpec],
    changes: Mapping[str, object],
    *,
    actor: str,
    reason: str,
    subject_type: str,
) -> SettingsSnapshot:
    """Validates every change before writing any; audits each value that really changed."""
    actor, reason = require_actor_and_reason(actor, reason)
    by_key = {spec.key: spec for spec in specs}
    unknown = sorted(set(changes) - set(by_key))
    if unknown:
        raise InvalidArgument(f"unknown setting(s): {', '.join(unknown)}", field=unknown[0])
    validated = {key: by_key[key].validate(value) for key, value in changes.items()}
    rows = {
        row.key: row
        for row in (
            await session.execute(
                select(model).where(model.key.in_(list(validated))).with_for_update()
            )
        ).scalars()
    }
    for key, new in validated.items():
        row = rows.get(key)
        old = row.value if row is not None else by_key[key].default
        if row is None:
            session.add(model(key=key, value=new, version=1, updated_by=actor))  # type: ignore[call-arg]
        elif row.value != new:
            row.value = new
            row.version = row.version + 1
            row.updated_by = actor
            row.updated_at = func.now()
        else:
            continue
        session.add(
            audit_model(
                tenant_id=None,
                subject_type=subject_type,
                subject_id=key,
                action="setting.changed",
                actor=actor,
                reason=reason,
                details={"key": key, "old": old, "new": new},
            )
        )
    await session.flush()
    session.expire_all()
    return await read_settings(session, model, specs)
