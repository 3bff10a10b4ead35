"""Background work of the integration process: revocation retries, the sync scheduler
(backfills, CDC polls), the webhook inbox processor and its gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aicollect.db.retention import retention_loop
from services.integration.connections import ConnectionService
from services.integration.deps import IntegrationDeps
from services.integration.retention import purge_integration
from services.integration.sync.confirm import confirmation_worker
from services.integration.sync.runner import SyncRunner
from services.integration.webhook_worker import build_processor, inbox_gauges

log = logging.getLogger(__name__)

REVOCATION_POLL_S = 30.0


async def revocation_retrier(connections: ConnectionService, stop: asyncio.Event) -> None:
    """Retries revocations Intuit did not confirm at disconnect time, with backoff."""
    while not stop.is_set():
        try:
            await connections.retry_due_revocations()  # each row on its own
        except Exception:  # a worker must outlive one bad round
            log.exception("revocation retry round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), REVOCATION_POLL_S)


def start_workers(deps: IntegrationDeps, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(revocation_retrier(deps.connections, stop), name="revocation-retrier"),
        # Backfills and CDC polls (sync.runner): due work found in the database, so a
        # backfill a crashed replica left running resumes from its checkpoint here.
        *(
            asyncio.create_task(SyncRunner(sync).run(stop), name=f"sync-scheduler-{name}")
            for name, sync in (deps.syncs or {deps.sync.platform.name: deps.sync}).items()
        ),
        # Confirmations of placement candidates recorded but not carried out by any
        # process (a crash, a restart): taken up from the database.
        asyncio.create_task(
            confirmation_worker(deps.syncs or {deps.sync.platform.name: deps.sync}, stop),
            name="confirmations",
        ),
        # Webhook inbox: claims due events (any number of replicas), reads, applies
        # through the sync of each connection's platform.
        asyncio.create_task(
            build_processor(deps.sync, deps.syncs).run(stop), name="inbox-processor"
        ),
        asyncio.create_task(inbox_gauges(deps.sessions, deps.metrics, stop), name="inbox-gauges"),
        # Processed inbox rows, expired OAuth states, old audit records.
        asyncio.create_task(
            retention_loop(
                lambda: purge_integration(
                    deps.sessions, deps.settings, purged=deps.metrics.retention_purged
                ),
                deps.settings.retention_interval_seconds,
                stop,
            ),
            name="retention",
        ),
    ]


async def stop_workers(tasks: list[asyncio.Task[None]], stop: asyncio.Event, grace: float) -> None:
    stop.set()
    done, pending = await asyncio.wait(tasks, timeout=grace)
    for task in pending:
        task.cancel()
    for task in (*done, *pending):
        with contextlib.suppress(asyncio.CancelledError):
            await task
