"""The sync scheduler: runs backfills and CDC polls of connected realms in the background.

Every ``sync_tick_seconds`` (or at once when poked: a new connection, SyncNow) it looks
for due work in the database, so any replica can pick up what another started or
crashed in: a pending, running or due-for-retry backfill resumes from its checkpoint; a
realm whose next poll time has come (``cdc_interval_seconds``, at most a day apart) or
that asked for one gets a CDC poll. Each job takes the realm's advisory lock first, so a
realm is never backfilled or polled twice at once. Only connected realms are considered;
while the kill switch is on nothing is started (PlatformCaller also refuses every call, so a
running job stops at its next call), and work resumes by itself once it is lifted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy import and_, select

from aicollect.db.locks import AdvisoryLockLost
from aicollect.errors import DomainError, NotFound
from aicollect.provider import Provider
from services.integration import admin
from services.integration.models import Connection, SyncState
from services.integration.providers.base import AccountingPlatform
from services.integration.states import CONNECTED
from services.integration.sync import state
from services.integration.sync.backfill import BackfillSuperseded, run_backfill
from services.integration.sync.cdc import poll
from services.integration.sync.context import SyncDeps
from services.integration.tokens import (
    ConnectionNotLive,
    KillSwitchOn,
    ReauthorizationRequired,
)

log = logging.getLogger(__name__)

BACKFILL = "backfill"
CDC = "cdc"
MAX_RETRY_S = 3600
KILL_SWITCH_NOTE = "paused: the QuickBooks kill switch is on; resumes when it is lifted"


def _expected(exc: BaseException, platform: AccountingPlatform) -> bool:
    """A domain error or the platform's own: its message is safe and says enough."""
    return isinstance(exc, DomainError) or platform.classify_error(exc) is not None


def describe(exc: BaseException, platform: AccountingPlatform) -> str:
    """A last-error text without secrets: domain and platform messages, else the type."""
    if _expected(exc, platform):
        return str(exc)[:500]
    return f"internal error ({type(exc).__name__}); see the service's logs"


class SyncRunner:
    def __init__(self, deps: SyncDeps) -> None:
        self.deps = deps
        self.trigger = deps.trigger
        self._jobs: dict[tuple[str, str, str], asyncio.Task[None]] = {}

    @property
    def jobs(self) -> list[tuple[str, str, str]]:
        return list(self._jobs)

    async def run(self, stop: asyncio.Event) -> None:
        tick = self.deps.settings.sync_tick_seconds
        try:
            while not stop.is_set():
                self.trigger.wake.clear()
                try:
                    await self.round()
                except Exception:  # the scheduler must outlive one bad round
                    log.exception("sync scheduling round failed")
                waits = [
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self.trigger.wake.wait()),
                ]
                try:
                    await asyncio.wait(waits, timeout=tick, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiter in waits:
                        waiter.cancel()
        finally:
            await self.cancel_jobs()

    async def cancel_jobs(self) -> None:
        tasks = list(self._jobs.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def round(self) -> None:
        """Starts every due job not already running here (up to ``sync_max_jobs``)."""
        async with self.deps.sessions() as session:
            if await admin.kill_switch_on(session, Provider(self.deps.platform.name)):
                return
        for job in await self.due():
            if job in self._jobs:
                continue
            if len(self._jobs) >= self.deps.settings.sync_max_jobs:
                break
            kind, tenant_id, realm_id = job
            self._jobs[job] = asyncio.create_task(
                self._job(job), name=f"sync-{kind}:{tenant_id}:{realm_id}"
            )

    async def due(self) -> list[tuple[str, str, str]]:
        now = state.now()
        async with self.deps.sessions() as session:
            rows = (
                await session.execute(
                    select(Connection.tenant_id, Connection.realm_id, SyncState)
                    .outerjoin(
                        SyncState,
                        and_(
                            SyncState.tenant_id == Connection.tenant_id,
                            SyncState.realm_id == Connection.realm_id,
                        ),
                    )
                    .where(
                        Connection.state == CONNECTED,
                        Connection.realm_id.is_not(None),
                        Connection.provider == self.deps.platform.name,  # this platform's
                    )
                    .order_by(Connection.tenant_id)
                )
            ).all()
        jobs: list[tuple[str, str, str]] = []
        for tenant_id, realm_id, row in rows:
            assert realm_id is not None
            if row is None:  # connected, but the backfill request was lost: queue it now
                await state.request_backfill(
                    self.deps.sessions,
                    tenant_id,
                    realm_id,
                    actor="system",
                    reason="connected realm without a backfill",
                )
                jobs.append((BACKFILL, tenant_id, realm_id))
                continue
            if row.backfill_phase in state.ACTIVE_PHASES or (
                row.backfill_phase == state.FAILED
                and row.backfill_next_attempt_at is not None
                and row.backfill_next_attempt_at <= now
            ):
                jobs.append((BACKFILL, tenant_id, realm_id))
            if row.cdc_high_water is not None and (
                row.cdc_requested or row.cdc_next_poll_at is None or row.cdc_next_poll_at <= now
            ):
                jobs.append((CDC, tenant_id, realm_id))
        return jobs

    async def _job(self, job: tuple[str, str, str]) -> None:
        kind, tenant_id, realm_id = job
        lock = state.BACKFILL_LOCK if kind == BACKFILL else state.CDC_LOCK
        try:
            async with state.realm_lock(self.deps.engine, lock, tenant_id, realm_id) as held:
                if not held:
                    return  # another replica is on it
                if kind == BACKFILL:
                    await self._backfill(tenant_id, realm_id)
                else:
                    await self._poll(tenant_id, realm_id)
        except asyncio.CancelledError:
            raise
        except AdvisoryLockLost as exc:
            # Stopped mid-way; its row still says what is due, so it resumes (from the
            # backfill's checkpoint) once a replica takes the lock again.
            log.warning(
                "sync job stopped: it lost its realm lock",
                extra={"job": kind, "tenant_id": tenant_id, "realm_id": realm_id, "why": str(exc)},
            )
        except Exception:
            log.exception("sync job failed", extra={"job": kind, "tenant_id": tenant_id})
        finally:
            self._jobs.pop(job, None)

    async def _backfill(self, tenant_id: str, realm_id: str) -> None:
        deps = self.deps
        try:
            await run_backfill(deps, tenant_id, realm_id)
        except KillSwitchOn:
            await state.update_state(
                deps.sessions, tenant_id, realm_id, backfill_last_error=KILL_SWITCH_NOTE
            )
        except BackfillSuperseded:
            pass
        except (ReauthorizationRequired, ConnectionNotLive, NotFound) as exc:
            # Nothing to retry until the tenant connects again (which queues a new run).
            await state.update_state(
                deps.sessions,
                tenant_id,
                realm_id,
                backfill_phase=state.FAILED,
                backfill_finished_at=state.now(),
                backfill_last_error=describe(exc, deps.platform),
                backfill_next_attempt_at=None,
            )
        except Exception as exc:
            async with deps.sessions() as session:
                row = await state.load(session, tenant_id, realm_id)
            attempts = (row.backfill_attempts if row else 0) + 1
            delay = min(MAX_RETRY_S, deps.settings.backfill_retry_seconds * 2 ** (attempts - 1))
            finished = state.now()
            await state.update_state(
                deps.sessions,
                tenant_id,
                realm_id,
                backfill_phase=state.FAILED,
                backfill_finished_at=finished,
                backfill_last_error=describe(exc, deps.platform),
                backfill_attempts=attempts,
                backfill_next_attempt_at=finished + timedelta(seconds=delay),
            )
            log.warning(
                "backfill failed; it resumes from its checkpoint",
                extra={
                    "tenant_id": tenant_id,
                    "realm_id": realm_id,
                    "error": describe(exc, deps.platform),
                    "retry_in_s": delay,
                },
                exc_info=not _expected(exc, deps.platform),
            )

    async def _poll(self, tenant_id: str, realm_id: str) -> None:
        deps = self.deps
        try:
            await poll(deps, tenant_id, realm_id)
        except KillSwitchOn:  # due again as soon as the switch is lifted
            await state.update_state(
                deps.sessions, tenant_id, realm_id, cdc_next_poll_at=state.now()
            )
        except (ReauthorizationRequired, ConnectionNotLive, NotFound) as exc:
            await state.update_state(
                deps.sessions, tenant_id, realm_id, cdc_last_error=describe(exc, deps.platform)
            )
        except Exception as exc:
            retry = min(deps.settings.cdc_interval_seconds, deps.settings.backfill_retry_seconds)
            await state.update_state(
                deps.sessions,
                tenant_id,
                realm_id,
                cdc_last_error=describe(exc, deps.platform),
                cdc_next_poll_at=state.now() + timedelta(seconds=retry),
            )
            log.warning(
                "CDC poll failed; the high-water mark stays",
                extra={
                    "tenant_id": tenant_id,
                    "realm_id": realm_id,
                    "error": describe(exc, deps.platform),
                },
                exc_info=not _expected(exc, deps.platform),
            )
