"""What the integration service purges: processed webhook inbox rows, expired OAuth states,
and audit records past their years. Dead letters stay until a person deals with them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.db.retention import Purge, purge_all, table_of
from aicollect.settings import Settings
from services.integration.models import AuditEvent, InboxEvent, OAuthState

# An expired state is kept a day, for a support question about a failed connect.
STATE_GRACE = timedelta(days=1)


def integration_purges(settings: Settings) -> list[Purge]:
    inbox = table_of(InboxEvent)
    return [
        Purge(
            "webhook_inbox",
            inbox,
            "received_at",
            timedelta(days=settings.retention_inbox_days),
            inbox.c.status.in_(("done", "dropped")),
        ),
        Purge("oauth_states", table_of(OAuthState), "expires_at", STATE_GRACE, key="state_hash"),
        Purge(
            "integration_audit_events",
            table_of(AuditEvent),
            "created_at",
            timedelta(days=365 * settings.retention_audit_years),
        ),
    ]


async def purge_integration(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
    purged: Counter | None = None,
) -> dict[str, int]:
    return await purge_all(
        sessions, integration_purges(settings), now or datetime.now(UTC), purged=purged
    )
