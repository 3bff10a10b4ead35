"""The inbox workers of the integration process, wired to the platform and the matcher.

Events name entities; the worker reads a batch's entities from the platform as they are
now, one query per entity type (payments ahead of everything else in the realm's
budget), and applies them through the same function the CDC poll uses, so every path to
the matcher is the same path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.metrics import IntegrationMetrics
from services.integration.budget import Priority
from services.integration.inbox import EntityApplier, InboxProcessor
from services.integration.models import Connection, InboxEvent
from services.integration.providers.base import Json
from services.integration.states import CONNECTED, DISCONNECTED, NEEDS_REAUTHORIZATION
from services.integration.sync.apply import apply_changes
from services.integration.sync.apply_context import SyncContext
from services.integration.sync.context import SyncDeps

# What a connection row's state can be (tokens_unreadable is reported, never stored).
STORED_STATES = (CONNECTED, NEEDS_REAUTHORIZATION, DISCONNECTED)

log = logging.getLogger(__name__)


def entity_applier(
    default: SyncDeps, by_provider: Mapping[str, SyncDeps] | None = None
) -> EntityApplier:
    """Reads the named entities as they are now and applies them (source ``webhook``),
    through the sync of the connection's platform (the processor passes the connection's
    ``provider``, read with its events, so the round reads no row for it)."""

    async def apply(
        tenant_id: str, realm_id: str, wanted: dict[str, list[str]], provider: str
    ) -> None:
        deps = by_provider.get(provider, default) if by_provider else default
        platform = deps.platform
        known: dict[str, list[str]] = {}
        for entity, ids in wanted.items():
            name = platform.entity_name(entity)
            if name is not None:
                known[name] = ids
        if not known:
            return  # entities we do not sync
        changes: dict[str, list[Json]] = {}
        for name, ids in known.items():
            # One query per entity type; payments jump the realm's queue (they stop outreach).
            priority = Priority.PAYMENT if name == "Payment" else Priority.WEBHOOK
            found = await deps.reader(tenant_id, realm_id, priority).by_ids(name, ids)
            # Absent from the query means deleted (QBO: reads of it would answer 610).
            changes[name] = [found.get(i) or {"Id": i, "status": "Deleted"} for i in ids]
        ctx = await SyncContext.open(
            deps, tenant_id, realm_id, source="webhook", priority=Priority.WEBHOOK
        )
        await apply_changes(ctx, changes)

    return apply


def build_processor(
    deps: SyncDeps, by_provider: Mapping[str, SyncDeps] | None = None
) -> InboxProcessor:
    processor = InboxProcessor(deps.engine, deps.sessions, entity_applier(deps, by_provider))
    metrics = deps.metrics

    def observed(event: InboxEvent, elapsed: float) -> None:
        metrics.inbox_processed.labels("done").inc()
        metrics.webhook_to_decision.observe(
            max(0.0, (datetime.now(UTC) - event.received_at).total_seconds())
        )

    processor.on_processed = observed
    return processor


async def inbox_gauges(
    sessions: async_sessionmaker[AsyncSession], metrics: IntegrationMetrics, stop: asyncio.Event
) -> None:
    """Keeps the inbox depth, age and dead-letter gauges and the connections-by-state gauge
    current (every 5 s)."""
    while not stop.is_set():
        try:
            async with sessions() as session:
                pending, oldest, dead = (
                    await session.execute(
                        select(
                            func.count().filter(InboxEvent.status == "pending"),
                            func.min(InboxEvent.received_at).filter(InboxEvent.status == "pending"),
                            func.count().filter(InboxEvent.status == "dead"),
                        )
                    )
                ).one()
                counted = await session.execute(
                    select(Connection.state, func.count()).group_by(Connection.state)
                )
                by_state: dict[str, int] = {state: count for state, count in counted.all()}
            for state in STORED_STATES:
                metrics.connections.labels(state).set(by_state.get(state, 0))
            metrics.inbox_depth.set(pending)
            metrics.dead_letters.set(dead)
            metrics.inbox_oldest_age.set(
                (datetime.now(UTC) - oldest).total_seconds() if oldest else 0
            )
        except Exception:  # metrics must never take the process down
            log.warning("could not refresh inbox gauges", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 5.0)
