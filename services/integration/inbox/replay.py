"""Replaying dead letters (AdminService.ReplayDeadLetters)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.errors import InvalidArgument
from services.integration.inbox.ingest import WebhookFormat
from services.integration.inbox.store import (
    NOTIFY_CHANNEL,
    STORE_SQL,
    Unstorable,
    checked_rows,
    counts_of,
    reason_of,
    refused,
    safe_text,
    store_args,
)
from services.integration.models import InboxEvent


async def replay_dead_letters(
    session: AsyncSession,
    webhooks: Callable[[str], WebhookFormat],
    *,
    tenant_id: str | None,
    realm_id: str | None,
    event_ids: list[str],
) -> list[int]:
    """Puts the dead letters in scope back in the queue; a raw one (a body that could not be
    stored as parsed) is parsed again by its provider's ``webhooks(provider)`` and its events
    stored, or stays dead with the reason."""
    scope = [InboxEvent.status == "dead"]
    if tenant_id:
        scope.append(InboxEvent.tenant_id == tenant_id)
    if realm_id:
        scope.append(InboxEvent.realm_id == realm_id)
    if event_ids:
        scope.append(InboxEvent.event_id.in_(event_ids))
    query = (
        update(InboxEvent)
        .where(*scope, InboxEvent.raw_body.is_(None))
        .values(status="pending", attempts=0, next_attempt_at=func.now(), last_error="")
        .returning(InboxEvent.id)
    )
    replayed = list((await session.execute(query)).scalars())
    replayed += await _replay_raw(session, webhooks, scope)
    if replayed:
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return replayed


async def _replay_raw(
    session: AsyncSession, webhooks: Callable[[str], WebhookFormat], scope: list[Any]
) -> list[int]:
    rows = list(
        (
            await session.execute(
                select(InboxEvent)
                .where(*scope, InboxEvent.raw_body.is_not(None))
                .order_by(InboxEvent.id)
                .with_for_update(skip_locked=True)
            )
        ).scalars()
    )
    if not rows:
        return []
    # The same statement as the writer's, on this session's connection and transaction.
    driver: Any = (await (await session.connection()).get_raw_connection()).driver_connection
    replayed = []
    for row in rows:
        body = row.raw_body or b""
        try:
            events = webhooks(row.provider).parse_webhook(body)
            checked = checked_rows([e for e in events if e.relevant])
            async with session.begin_nested():
                records = await driver.fetch(STORE_SQL, *store_args([checked]))
        except InvalidArgument as exc:  # the platform's malformed-delivery error
            reason = str(exc)
        except Unstorable as exc:
            reason = str(exc)
        except Exception as exc:
            if not refused(exc):
                raise
            reason = reason_of(exc)
        else:
            stored, duplicates, dropped, _ = counts_of([checked], records)[0]
            row.status = "done"
            row.processed_at = datetime.now(UTC)
            row.last_error = (
                f"replayed: {stored} stored, {duplicates} duplicates, {dropped} dropped"
            )
            replayed.append(row.id)
            continue
        row.last_error = safe_text(f"replay failed, still not stored as parsed: {reason}")
    return replayed
