"""One request budget per company (realm), shared by backfill, CDC and webhook fetches and
by every integration replica.

Intuit allows 500 requests per minute and 10 concurrent requests per realm and app. Every
call to the platform's API takes a slot here first, in two layers:

* ``RealmBudget``, in each process, is the local queue: waiters are served by priority
  (payments first: they stop outreach) and then in arrival order, at most ``concurrent``
  of them at once.
* ``SharedBudget`` is the company-wide grant, kept in PostgreSQL
  (``integration.request_budgets``, one row per provider and realm): at most
  ``per_minute`` requests started in any rolling minute and at most ``concurrent`` in
  flight across all replicas, and while the platform has throttled the realm (429) no
  replica starts a request until the pause is over. A grant is one atomic ``UPDATE``
  (the row lock serialises replicas for that one statement); the release is another. No
  transaction is held across the call, and an in-flight lease expires on its own
  (``lease_seconds``), so a killed replica cannot hold slots for ever.

Payments first across replicas too: CDC polls and backfills (``Priority.CDC`` and lower)
may use at most ``concurrent - concurrent // 5`` slots and ``per_minute - per_minute // 10``
starts a minute (8 and 450 of Intuit's 10 and 500); the rest is kept for payment and
webhook fetches, which no bulk pull on any replica can take from them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower runs first."""

    PAYMENT = 0  # a payment fetch can stop outreach
    WEBHOOK = 1  # other entities named by a webhook
    CDC = 2  # the safety-net poll
    BACKFILL = 3  # bulk pulls


def limits_for(
    priority: Priority, per_minute: int | None, concurrent: int | None
) -> tuple[int | None, int | None]:
    """The (per-minute, concurrent) limits a request of ``priority`` may use: bulk work
    leaves a fifth of the concurrency and a tenth of the minute to payments and webhooks."""
    if priority <= Priority.WEBHOOK:
        return per_minute, concurrent
    return (
        None if per_minute is None else per_minute - per_minute // 10,
        None if concurrent is None else concurrent - concurrent // 5,
    )


@dataclass
class _Realm:
    started: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    paused_until: float = 0.0
    waiters: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class RealmBudget:
    """The local layer: a priority queue per realm in this process, in front of the
    company-wide ``shared`` grant when there is one."""

    def __init__(
        self,
        *,
        per_minute: int | None = 500,
        concurrent: int | None = 10,
        shared: SharedBudget | None = None,
    ) -> None:
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.shared = shared
        self._realms: dict[str, _Realm] = {}
        self._seq = itertools.count()
        self.throttle_pauses = 0

    def _realm(self, realm_id: str) -> _Realm:
        realm = self._realms.get(realm_id)
        if realm is None:
            realm = self._realms[realm_id] = _Realm()
        return realm

    @asynccontextmanager
    async def slot(self, realm_id: str, priority: Priority) -> AsyncIterator[None]:
        realm = self._realm(realm_id)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(realm.waiters, (int(priority), next(self._seq), future))
        self._dispatch(realm_id)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                realm.in_flight -= 1  # granted just as we were cancelled: give it back
                self._dispatch(realm_id)
            raise
        try:
            if self.shared is None:
                yield
            else:
                async with self.shared.grant(realm_id, priority):
                    yield
        finally:
            realm.in_flight -= 1
            self._dispatch(realm_id)

    def pause(self, realm_id: str, seconds: float) -> None:
        """The platform throttled the realm: this process starts nothing for it until
        ``seconds`` have passed."""
        realm = self._realm(realm_id)
        realm.paused_until = max(realm.paused_until, time.monotonic() + seconds)
        self.throttle_pauses += 1
        self._dispatch(realm_id)

    async def close(self) -> None:
        """At shutdown, once no call is left: hand back the leases still being released."""
        if self.shared is not None:
            await self.shared.close()

    async def throttled(self, realm_id: str, seconds: float) -> None:
        """The platform throttled the realm: pause it here and in every replica."""
        self.pause(realm_id, seconds)
        if self.shared is not None:
            await self.shared.pause(realm_id, seconds)

    def _dispatch(self, realm_id: str) -> None:
        realm = self._realms[realm_id]
        now = time.monotonic()
        while realm.started and now - realm.started[0] >= 60.0:
            realm.started.popleft()
        while realm.waiters:
            priority, _, future = realm.waiters[0]
            if future.done():  # cancelled while waiting
                heapq.heappop(realm.waiters)
                continue
            wake_at = self._blocked_until(realm, Priority(priority), now)
            if wake_at is not None:
                if wake_at > now:
                    self._arm(realm_id, realm, wake_at - now)
                return  # blocked on concurrency: a release dispatches again
            heapq.heappop(realm.waiters)
            realm.in_flight += 1
            realm.started.append(now)
            future.set_result(None)

    def _blocked_until(self, realm: _Realm, priority: Priority, now: float) -> float | None:
        """None when a request may start now; else when to look again (now: on release)."""
        if realm.paused_until > now:
            return realm.paused_until
        per_minute, concurrent = limits_for(priority, self.per_minute, self.concurrent)
        if concurrent is not None and realm.in_flight >= concurrent:
            return now
        if per_minute is not None and len(realm.started) >= per_minute:
            return realm.started[0] + 60.0
        return None

    def _arm(self, realm_id: str, realm: _Realm, delay: float) -> None:
        if realm.timer is not None:
            realm.timer.cancel()
        realm.timer = asyncio.get_running_loop().call_later(delay + 0.001, self._dispatch, realm_id)


# Times are the database's clock (epoch seconds), the one clock all replicas share.
# ``statement_timestamp()`` (when the statement began, before any wait for the row lock)
# decides what has expired, which can only keep an entry a little longer; the start
# recorded is ``clock_timestamp()``, the moment of the grant.
_GRANT = text(
    """
    UPDATE integration.request_budgets AS b
    SET started = CASE WHEN CAST(:per_minute AS integer) IS NULL THEN '{}'::float8[]
            ELSE array_append(
                ARRAY(SELECT t FROM unnest(b.started) AS t WHERE t > n.now - :window), n.clock)
            END,
        leases = (
            SELECT coalesce(jsonb_object_agg(l.k, l.v), '{}'::jsonb)
            FROM jsonb_each(b.leases) AS l(k, v) WHERE l.v::float8 > n.now
        ) || jsonb_build_object(CAST(:holder AS text), n.clock + :lease)
    FROM (
        SELECT extract(epoch FROM statement_timestamp())::float8 AS now,
               extract(epoch FROM clock_timestamp())::float8 AS clock
    ) AS n
    WHERE b.provider = :provider AND b.realm_id = :realm AND b.paused_until <= n.now
      AND (CAST(:per_minute AS integer) IS NULL OR (
          SELECT count(*) FROM unnest(b.started) AS t WHERE t > n.now - :window
      ) < :per_minute)
      AND (CAST(:concurrent AS integer) IS NULL OR (
          SELECT count(*) FROM jsonb_each(b.leases) AS l(k, v) WHERE l.v::float8 > n.now
      ) < :concurrent)
    RETURNING n.clock
    """
)
_STATE = text(
    """
    SELECT b.started, b.leases, b.paused_until,
           extract(epoch FROM clock_timestamp())::float8 AS now
    FROM integration.request_budgets AS b
    WHERE b.provider = :provider AND b.realm_id = :realm
    """
)
_CREATE = text(
    """
    INSERT INTO integration.request_budgets (provider, realm_id) VALUES (:provider, :realm)
    ON CONFLICT DO NOTHING
    """
)
_RELEASE = text(
    """
    UPDATE integration.request_budgets SET leases = leases - CAST(:holder AS text)
    WHERE provider = :provider AND realm_id = :realm
    """
)
_PAUSE = text(
    """
    UPDATE integration.request_budgets
    SET paused_until = greatest(
        paused_until, extract(epoch FROM clock_timestamp())::float8 + :seconds)
    WHERE provider = :provider AND realm_id = :realm
    """
)


class SharedBudget:
    """The company-wide grant: every replica's requests for a realm, counted in PostgreSQL.

    A denied request waits for what blocks it: the end of the pause, the oldest start
    leaving the rolling minute, or (concurrency) a release in this process or a short
    poll (``poll_seconds``, jittered) for one in another replica.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        provider: str,
        *,
        per_minute: int | None = 500,
        concurrent: int | None = 10,
        lease_seconds: float = 120.0,
        window_seconds: float = 61.0,  # Intuit's minute plus a margin for network delays
        poll_seconds: float = 0.05,
    ) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.provider = provider
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.lease_seconds = lease_seconds
        self.window_seconds = window_seconds
        self.poll_seconds = poll_seconds
        self._released: dict[str, asyncio.Event] = {}
        self._background: set[asyncio.Task[None]] = set()

    async def _run(self, statement: TextClause, **params: object) -> list[tuple[Any, ...]]:
        async with self._engine.connect() as conn:
            result = await conn.execute(statement, {"provider": self.provider, **params})
            return [tuple(row) for row in result.all()] if result.returns_rows else []

    @asynccontextmanager
    async def grant(self, realm_id: str, priority: Priority) -> AsyncIterator[None]:
        holder = uuid.uuid4().hex
        await self._acquire(realm_id, holder, priority)
        try:
            yield
        finally:
            # Off the caller's path: the call's one database statement is its grant.
            self._spawn(self._release(realm_id, holder))

    async def _acquire(self, realm_id: str, holder: str, priority: Priority) -> None:
        per_minute, concurrent = limits_for(priority, self.per_minute, self.concurrent)
        while True:
            # Watch for this process's releases from before the attempt: one that lands
            # between a refusal and the wait still wakes us.
            released = self._released.setdefault(realm_id, asyncio.Event())
            attempt = asyncio.ensure_future(
                self._run(
                    _GRANT,
                    realm=realm_id,
                    holder=holder,
                    per_minute=per_minute,
                    concurrent=concurrent,
                    window=self.window_seconds,
                    lease=self.lease_seconds,
                )
            )
            try:
                granted = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                # The statement may still commit a lease: give it back when it does.
                attempt.add_done_callback(lambda _: self._spawn(self._release(realm_id, holder)))
                raise
            if granted:
                return
            await self._wait(realm_id, per_minute, released)

    async def _wait(self, realm_id: str, per_minute: int | None, released: asyncio.Event) -> None:
        rows = await self._run(_STATE, realm=realm_id)
        if not rows:
            await self._run(_CREATE, realm=realm_id)
            return
        started, leases, paused_until, now = rows[0]  # lists, dicts and floats
        if paused_until > now:
            await asyncio.sleep(paused_until - now)
            return
        recent = [t for t in started if t > now - self.window_seconds]
        if per_minute is not None and len(recent) >= per_minute:
            await asyncio.sleep(min(recent) + self.window_seconds - now)
            return
        live = [float(v) for v in leases.values() if float(v) > now]
        delay = self.poll_seconds * random.uniform(0.5, 1.5)
        if live:
            delay = min(delay, min(live) - now)
        with suppress(TimeoutError):
            async with asyncio.timeout(max(delay, 0.0)):
                await released.wait()

    async def _release(self, realm_id: str, holder: str) -> None:
        try:
            await self._run(_RELEASE, realm=realm_id, holder=holder)
        except Exception:  # the lease lapses on its own
            log.warning(
                "could not release a request lease; it expires by itself",
                extra={"realm_id": realm_id},
                exc_info=True,
            )
        event = self._released.pop(realm_id, None)
        if event is not None:
            event.set()  # wake this process's waiters now, not at their next poll

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Waits for the releases under way (a lease lost here would lapse only after
        ``lease_seconds``)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def pause(self, realm_id: str, seconds: float) -> None:
        """The platform throttled the realm: no replica starts a request for it until
        ``seconds`` have passed."""
        await self._run(_PAUSE, realm=realm_id, seconds=seconds)
