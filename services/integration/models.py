"""Tables of schema ``integration``, owned by the integration service alone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, MetaData, Text, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from aicollect.db.base import AuditEventColumns, SettingColumns

SCHEMA = "integration"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Tenant(Base):
    """A creditor and its integration flags."""

    __tablename__ = "tenants"

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    qbo_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class PlatformSetting(SettingColumns, Base):
    """Platform-wide settings this service owns (``qbo_kill_switch``)."""

    __tablename__ = "settings"


class AuditEvent(AuditEventColumns, Base):
    """Audit trail of settings and connection changes."""

    __tablename__ = "audit_events"
