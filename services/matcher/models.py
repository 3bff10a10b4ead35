"""Tables of schema ``matching``, owned by the matcher service alone."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from aicollect.db.base import AuditEventColumns, SettingColumns

SCHEMA = "matching"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class MatchingSetting(SettingColumns, Base):
    """Matching settings read at decision time (tolerance, window)."""

    __tablename__ = "settings"


class AuditEvent(AuditEventColumns, Base):
    """Audit trail of placements and matching settings."""

    __tablename__ = "audit_events"
