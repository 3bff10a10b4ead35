"""Reading the integration service's audit trail (``integration.audit_events``).

Events are listed newest first and paged by id (AIP-158 tokens, ``aicollect.rpc.paging``):
ids only grow, so an event recorded after the first page never shifts a later one. Details
pass through the same credential rules as the logs (``aicollect.logs``): a value under a
credential name is redacted, a text value is scrubbed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.errors import InvalidArgument
from aicollect.logs import REDACTED, is_credential_name, scrub
from aicollect.rpc import paging
from services.integration import admin
from services.integration.models import AuditEvent

SUBJECT_TYPE = re.compile(r"[a-z_]{1,64}")
ACTION_PREFIX = re.compile(r"[a-z0-9_.]{1,200}")


@dataclass(frozen=True)
class AuditFilter:
    """Which events to list; every field is optional and they combine."""

    tenant_id: str = ""
    subject_type: str = ""
    action_prefix: str = ""
    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive

    def checked(self) -> AuditFilter:
        """The filter as given, or INVALID_ARGUMENT naming the first bad field."""
        tenant_id = admin.validate_tenant_id(self.tenant_id) if self.tenant_id.strip() else ""
        if self.subject_type and not SUBJECT_TYPE.fullmatch(self.subject_type):
            raise InvalidArgument(
                "subject_type must be lower-case letters and '_', at most 64 characters",
                field="subject_type",
            )
        if self.action_prefix and not ACTION_PREFIX.fullmatch(self.action_prefix):
            raise InvalidArgument(
                "action_prefix must be lower-case letters, digits, '_' and '.', "
                "at most 200 characters",
                field="action_prefix",
            )
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InvalidArgument("end_time must be after start_time", field="end_time")
        return AuditFilter(tenant_id, self.subject_type, self.action_prefix, self.start, self.end)

    def token_filters(self) -> dict[str, Any]:
        """What a page token is bound to (a token made for other filters is refused)."""
        return {
            "tenant_id": self.tenant_id,
            "subject_type": self.subject_type,
            "action_prefix": self.action_prefix,
            "start": self.start.isoformat() if self.start else "",
            "end": self.end.isoformat() if self.end else "",
        }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def list_audit_events(
    session: AsyncSession, wanted: AuditFilter, page_size: int, page_token: str
) -> tuple[list[AuditEvent], str]:
    """One page of events, newest first, and the next page's token ("" on the last)."""
    size = paging.page_size(page_size)
    wanted = wanted.checked()
    filters = wanted.token_filters()
    position = paging.decode_token(page_token, filters)
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(size + 1)
    if wanted.tenant_id:
        query = query.where(AuditEvent.tenant_id == wanted.tenant_id)
    if wanted.subject_type:
        query = query.where(AuditEvent.subject_type == wanted.subject_type)
    if wanted.action_prefix:
        query = query.where(
            AuditEvent.action.like(_escape_like(wanted.action_prefix) + "%", escape="\\")
        )
    if wanted.start is not None:
        query = query.where(AuditEvent.created_at >= wanted.start)
    if wanted.end is not None:
        query = query.where(AuditEvent.created_at < wanted.end)
    if position is not None:
        before = position.get("before_id")
        if not isinstance(before, int):
            raise InvalidArgument("page_token is not valid", field="page_token")
        query = query.where(AuditEvent.id < before)
    rows = list((await session.execute(query)).scalars())
    page, more = rows[:size], len(rows) > size
    token = paging.encode_token({"before_id": page[-1].id}, filters) if more else ""
    return page, token


def safe_details(value: Any) -> Any:
    """``value`` with credential-named entries redacted and text scrubbed, recursively."""
    if isinstance(value, dict):
        return {
            str(k): REDACTED if is_credential_name(str(k)) else safe_details(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [safe_details(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value
