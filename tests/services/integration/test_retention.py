"""Retention in the integration service: processed inbox rows, expired OAuth states and
audit past its years are purged; nothing still needed is (dead letters, pending events,
live states)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.settings import Settings
from services.integration.models import AuditEvent as IntegrationAudit
from services.integration.models import InboxEvent, OAuthState
from services.integration.retention import purge_integration
from tests.helpers.rows import audit_row

NOW = datetime.now(UTC)
SETTINGS = Settings.from_env(
    {
        "AICOLLECT_RETENTION_INBOX_DAYS": "7",
        "AICOLLECT_RETENTION_AUDIT_YEARS": "7",
    }
)


def _inbox(event: str, status: str, age: timedelta) -> dict[str, object]:
    return {
        "event_id": event,
        "dedupe_key": event,
        "tenant_id": "acme",
        "realm_id": "1",
        "entity": "Payment",
        "entity_id": event,
        "operation": "Create",
        "occurred_at": NOW - age,
        "received_at": NOW - age,
        "status": status,
        "payload": {"name": "Payment", "id": event},
    }


def _state(key: bytes, expires: datetime) -> dict[str, object]:
    return {"state_hash": key * 32, "tenant_id": "acme", "actor": "jane", "expires_at": expires}


async def test_integration_purges_only_what_has_served_its_purpose(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    old, recent = timedelta(days=8), timedelta(days=1)
    async with sessions.begin() as session:
        await session.execute(
            insert(InboxEvent),
            [
                _inbox("done-old", "done", old),
                _inbox("dropped-old", "dropped", old),
                _inbox("done-recent", "done", recent),
                _inbox("dead-old", "dead", old),  # a person must still look at it
                _inbox("pending-old", "pending", old),  # not yet processed
            ],
        )
        await session.execute(
            insert(OAuthState),
            [
                _state(b"a", NOW - old),
                _state(b"b", NOW - recent / 4),  # expired, kept a day for support
                _state(b"c", NOW + recent),
            ],
        )
        await session.execute(
            insert(IntegrationAudit),
            [
                audit_row("ancient", NOW - timedelta(days=366 * 8)),
                audit_row("kept", NOW - timedelta(days=365)),
            ],
        )

    counts = await purge_integration(sessions, SETTINGS, now=NOW)
    assert counts == {"webhook_inbox": 2, "oauth_states": 1, "integration_audit_events": 1}

    async with sessions() as session:
        left = set((await session.execute(select(InboxEvent.event_id))).scalars())
        assert left == {"done-recent", "dead-old", "pending-old"}
        states = set((await session.execute(select(OAuthState.state_hash))).scalars())
        assert states == {b"b" * 32, b"c" * 32}
        audit = set((await session.execute(select(IntegrationAudit.subject_id))).scalars())
        assert "ancient" not in audit
        assert "kept" in audit
    assert await purge_integration(sessions, SETTINGS, now=NOW) == dict.fromkeys(counts, 0)
