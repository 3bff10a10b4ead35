"""The inbox processor: claims due events per realm (several realms at once), reads and
applies them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.db.locks import AdvisoryLock, LockConnections
from aicollect.errors import DomainError
from services.integration import admin
from services.integration.inbox.store import NOTIFY_CHANNEL
from services.integration.models import Connection, InboxEvent
from services.integration.states import CONNECTED, LIVE_STATES

log = logging.getLogger(__name__)

# apply(tenant_id, realm_id, {entity: [ids]}, provider): read the entities from the
# company's platform (``qbo``, ``xero``) as they are now and apply them; raises when any of
# them could not be applied.
EntityApplier = Callable[[str, str, dict[str, list[str]], str], Awaitable[None]]


def _by_entity(groups: dict[tuple[str, str], list[InboxEvent]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entity, entity_id in groups:
        out.setdefault(entity, []).append(entity_id)
    return out


class InboxProcessor:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        apply: EntityApplier,
        *,
        batch_size: int = 100,
        max_attempts: int = 8,
        backoff_base_s: float = 2.0,
        backoff_cap_s: float = 3600.0,
        poll_interval_s: float = 1.0,
        realm_concurrency: int = 4,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._apply = apply
        self._batch = batch_size
        self._max_attempts = max_attempts
        self._base = backoff_base_s
        self._cap = backoff_cap_s
        self._poll = poll_interval_s
        if realm_concurrency < 1:
            raise ValueError("realm_concurrency must be at least 1")
        # 4, not more: more realms at once means fewer events per round and more rounds,
        # each with its lock, reads, matcher calls and commits. Measured at 100 payments/s
        # over 10 companies (docs/performance.md): 4 at once had a lower p99 than 8 and 2,
        # at 0.90x the CPU of 8.
        self._realm_concurrency = realm_concurrency
        self._realms_at_once = asyncio.Semaphore(realm_concurrency)
        self._wake = asyncio.Event()
        # While ``run`` loops, the realm lock (taken once per realm and round) reuses its
        # connections; a single round (``run_once``) opens and closes its own.
        self._lock_connections: LockConnections | None = None
        self.processed = 0
        self.dead_lettered = 0
        self.on_processed: Callable[[InboxEvent, float], None] | None = None

    # -- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop), name="inbox-listen")
        connections = self._lock_connections = LockConnections(keep=self._realm_concurrency)
        try:
            while not stop.is_set():
                try:
                    worked = await self.run_once()
                except Exception:  # a worker must outlive one bad round
                    log.exception("inbox round failed")
                    worked = 0
                if worked:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wait(stop), self._poll)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            self._lock_connections = None
            await connections.close()

    async def _wait(self, stop: asyncio.Event) -> None:
        stopped = asyncio.ensure_future(stop.wait())
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({stopped, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            woken.cancel()

    async def _listen(self, stop: asyncio.Event) -> None:
        """LISTEN for new events so they are processed at once, not at the next poll."""
        while not stop.is_set():
            try:
                async with self._engine.connect() as conn:
                    raw = await conn.get_raw_connection()
                    driver: Any = raw.driver_connection

                    def wake(*_: object) -> None:
                        self._wake.set()

                    await driver.add_listener(NOTIFY_CHANNEL, wake)
                    try:
                        await stop.wait()
                    finally:
                        await driver.remove_listener(NOTIFY_CHANNEL, wake)
            except asyncio.CancelledError:
                raise
            except Exception:  # the poll still runs; reconnect shortly
                log.warning("inbox LISTEN connection lost; relying on polling")
                await asyncio.sleep(self._poll)

    async def run_once(self) -> int:
        """Processes every realm that has due events, up to ``realm_concurrency`` realms at
        once (each waits on its platform reads and the matcher, not on the others; the
        oldest waiting realms start first); returns how many events it settled. A realm
        whose round fails is logged and left to the next round; the others go on."""
        async with self._sessions() as session:
            if await admin.kill_switch_on(session):
                return 0
            realms = list(
                (
                    await session.execute(
                        select(InboxEvent.realm_id)
                        .where(
                            InboxEvent.status == "pending",
                            InboxEvent.next_attempt_at <= func.now(),
                        )
                        .group_by(InboxEvent.realm_id)
                        .order_by(func.min(InboxEvent.received_at))
                    )
                ).scalars()
            )
        results = await asyncio.gather(
            *(self._process_realm_bounded(realm_id) for realm_id in realms),
            return_exceptions=True,
        )
        settled = 0
        for realm_id, result in zip(realms, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception | asyncio.CancelledError):
                    raise result  # KeyboardInterrupt, SystemExit: not a realm's failure
                log.error(
                    "inbox round failed for a realm",
                    exc_info=result,
                    extra={"realm_id": realm_id},
                )
            else:
                settled += result
        return settled

    async def _process_realm_bounded(self, realm_id: str) -> int:
        async with self._realms_at_once:
            return await self.process_realm(realm_id)

    async def process_realm(self, realm_id: str) -> int:
        async with AdvisoryLock(
            self._engine, f"qbo-inbox:{realm_id}", connections=self._lock_connections
        ) as lock:
            if not lock.held:
                return 0  # another worker (maybe another replica) has this realm
            settled = 0
            while True:
                lock.check()  # a lost lock: stop between batches, another worker goes on
                done = await self._process_batch(realm_id)
                settled += done
                if done < self._batch:
                    return settled

    async def _process_batch(self, realm_id: str) -> int:
        async with self._sessions.begin() as session:
            if await admin.kill_switch_on(session):
                return 0
            connection = (
                await session.execute(
                    select(Connection).where(
                        Connection.realm_id == realm_id, Connection.state.in_(LIVE_STATES)
                    )
                )
            ).scalar_one_or_none()
            events = list(
                (
                    await session.execute(
                        select(InboxEvent)
                        .where(
                            InboxEvent.realm_id == realm_id,
                            InboxEvent.status == "pending",
                            InboxEvent.next_attempt_at <= func.now(),
                        )
                        .order_by(InboxEvent.occurred_at, InboxEvent.id)
                        .limit(self._batch)
                        .with_for_update(skip_locked=True)
                    )
                ).scalars()
            )
            if not events:
                return 0
            if connection is None:
                for event in events:
                    event.status = "dropped"
                    event.last_error = "the realm is no longer connected"
                    event.processed_at = datetime.now(UTC)
                log.info("dropped events of a disconnected realm", extra={"realm_id": realm_id})
                return len(events)
            if connection.state != CONNECTED:
                return 0  # waits for the tenant to reconnect; attempts are not consumed
        # Outside any transaction: read the batch's entities (one query per entity type,
        # however many events name them) and apply them together.
        groups: dict[tuple[str, str], list[InboxEvent]] = {}
        for event in events:
            groups.setdefault((event.entity, event.entity_id), []).append(event)
        started = time.monotonic()
        try:
            await self._apply(
                connection.tenant_id, realm_id, _by_entity(groups), connection.provider
            )
        except asyncio.CancelledError:
            raise
        except Exception as batch_error:
            if len(groups) == 1:
                await self._failed(next(iter(groups.values())), batch_error)
                return len(events)
            # Isolate the entity that fails: apply each one on its own.
            for key, group in groups.items():
                single = time.monotonic()
                try:
                    await self._apply(
                        connection.tenant_id,
                        realm_id,
                        _by_entity({key: group}),
                        connection.provider,
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await self._failed(group, exc)
                    continue
                await self._done(group, time.monotonic() - single)
            return len(events)
        await self._done(
            [e for group in groups.values() for e in group], time.monotonic() - started
        )
        return len(events)

    async def _done(self, group: list[InboxEvent], elapsed: float) -> None:
        now = datetime.now(UTC)
        async with self._sessions.begin() as session:
            await session.execute(
                update(InboxEvent)
                .where(InboxEvent.id.in_([e.id for e in group]))
                .values(status="done", processed_at=now, attempts=InboxEvent.attempts + 1)
            )
        self.processed += len(group)
        if self.on_processed is not None:
            for event in group:
                self.on_processed(event, elapsed)

    async def _failed(self, group: list[InboxEvent], exc: Exception) -> None:
        reason = exc.message if isinstance(exc, DomainError) else f"{type(exc).__name__}: {exc}"
        reason = reason[:500]
        level = logging.WARNING if isinstance(exc, DomainError) else logging.ERROR
        log.log(
            level,
            "inbox event failed",
            exc_info=not isinstance(exc, DomainError),
            extra={"realm_id": group[0].realm_id, "entity": group[0].entity, "reason": reason},
        )
        async with self._sessions.begin() as session:
            for event in group:
                row = await session.get(InboxEvent, event.id, with_for_update=True)
                if row is None:
                    continue
                row.attempts += 1
                row.last_error = reason
                if row.attempts >= self._max_attempts:
                    row.status = "dead"
                    row.processed_at = datetime.now(UTC)
                    self.dead_lettered += 1
                else:
                    delay = min(self._cap, self._base * 2 ** (row.attempts - 1))
                    row.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
