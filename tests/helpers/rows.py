"""Rows written straight into a table, for tests of what reads or purges them."""

from __future__ import annotations

from datetime import datetime


def audit_row(subject: str, created_at: datetime, tenant_id: str = "acme") -> dict[str, object]:
    """An audit record (either service's ``audit_events``) made at ``created_at``."""
    return {
        "tenant_id": tenant_id,
        "subject_type": "test",
        "subject_id": subject,
        "action": "test.recorded",
        "actor": "test",
        "created_at": created_at,
    }
