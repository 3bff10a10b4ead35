"""One request budget per company (realm), shared by backfill, CDC and webhook fetches,
by the OAuth callback's company check and by every integration replica.

A platform states its per-company limits as data (``RequestLimits``): QuickBooks Online
allows 500 requests in a rolling minute and 10 at once per company; Xero's minute,
concurrency and daily limits are the same two kinds, more windows. Every call to a
platform's API takes a slot first, in two layers:

* ``RealmBudget``, in each process, is the local queue: its callers wait in one priority
  queue per realm (payments first: they stop outreach; then arrival order). One pump per
  realm asks the ledger for a slot on behalf of whoever is first in the queue *at the time
  of asking*, so a payment that arrives while bulk work waits is the next one served. A
  caller holds nothing while it waits.
* The ledger counts the slots. ``SharedBudget`` keeps it in PostgreSQL
  (``integration.request_budgets``, one row per provider and realm) for every replica:
  the starts in each window, the leases in flight (each with an expiry, so a killed
  replica's slots lapse on their own), the end of a throttling pause (a 429 seen by one
  replica pauses them all), and what each replica's queue is waiting for. A grant or a
  refusal is one statement (the row lock serialises replicas for that one statement); the
  release is another, off the caller's path. No transaction is held across a call.
  ``LocalLedger`` is the same ledger in memory, for one process.

Payments first across replicas: a refused pump records the priority it waits with, and no
replica is granted a slot for less urgent work while another replica waits with more
urgent work. Bulk work (``Priority.CDC`` and lower) also leaves a reserve: a fifth of the
concurrency and a tenth of each window (2 and 50 of Intuit's 10 and 500), so a payment or
webhook fetch usually starts without waiting for a bulk request to finish. It also spreads
its share of a minute over the minute (at most a tenth of it, rounded up, in any tenth:
Xero's 54 as 6 every 6 s): a share used up in one burst would leave the window all at
once a minute later, and payments beyond the reserve would wait for that minute to pass.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)


class Priority(IntEnum):
    """Lower runs first."""

    PAYMENT = 0  # a payment fetch can stop outreach
    WEBHOOK = 1  # other entities named by a webhook; the OAuth callback's company check
    CDC = 2  # the safety-net poll
    BACKFILL = 3  # bulk pulls


@dataclass(frozen=True)
class Window:
    """At most ``requests`` started in any ``seconds`` (rolling)."""

    seconds: float
    requests: int


@dataclass(frozen=True)
class RequestLimits:
    """A platform's per-company limits, as data: QBO ``RequestLimits.of(concurrent=10,
    per_minute=500)``; Xero would add a daily window (``per_day=5000``)."""

    concurrent: int | None = None
    windows: tuple[Window, ...] = ()

    @classmethod
    def of(
        cls,
        *,
        concurrent: int | None = None,
        per_minute: int | None = None,
        per_day: int | None = None,
    ) -> RequestLimits:
        """None or 0 means no such limit."""
        windows = tuple(
            Window(seconds, count)
            for seconds, count in ((60.0, per_minute), (86400.0, per_day))
            if count
        )
        return cls(concurrent or None, windows)

    def for_priority(self, priority: Priority) -> RequestLimits:
        """What a request of ``priority`` may use: bulk work leaves a fifth of the
        concurrency and a tenth of each window to payments and webhooks, and spreads its
        share of a short window over the window (``_paced``)."""
        if priority <= Priority.WEBHOOK:
            return self
        concurrent = None if self.concurrent is None else self.concurrent - self.concurrent // 5
        shares = tuple(replace(w, requests=w.requests - w.requests // 10) for w in self.windows)
        return RequestLimits(concurrent, shares + _paced(shares, concurrent))

    @property
    def longest(self) -> float:
        return max((w.seconds for w in self.windows), default=0.0)


# Bulk work's share of a window up to this long is spread over it (``_paced``); a longer
# one (Xero's day) is not: that would hold a backfill to a tenth of its day per 2.4 hours.
PACED_UP_TO_S = 60.0
PACING_PARTS = 10


def _paced(shares: tuple[Window, ...], concurrent: int | None) -> tuple[Window, ...]:
    """Bulk work may start at most a tenth of its share of a short window (rounded up) in
    any tenth of that window. Without it a bulk job fills its whole share in a few seconds
    (Xero: 54 of the minute's 60), the starts then leave the window together a minute
    later, and a payment needing more than the reserve meanwhile waits for that minute to
    pass; spread out, one start leaves every second or so, and a payment takes that slot
    first. A window whose tenth would hold less than what bulk work may run at once (or
    than two requests) is too small to split and is left as it is."""
    least = max(2, concurrent or 0)
    return tuple(
        Window(w.seconds / PACING_PARTS, part)
        for w in shares
        if w.seconds <= PACED_UP_TO_S and (part := -(-w.requests // PACING_PARTS)) >= least
    )


class Ledger(Protocol):
    """Counts a company's slots: in memory (``LocalLedger``) or for every replica
    (``SharedBudget``)."""

    async def take(
        self, realm_id: str, holder: str, priority: Priority, waiting: Priority | None
    ) -> float | None:
        """None when ``holder`` now holds a slot; otherwise the seconds after which asking
        again is worth it (a release in this process wakes the queue sooner).
        ``waiting``: the priority still queued in this process after a grant."""
        ...

    async def give_back(self, realm_id: str, holder: str) -> None: ...

    async def pause(self, realm_id: str, seconds: float) -> None:
        """The platform throttled the company: nothing starts until ``seconds`` passed."""
        ...


@dataclass
class _LocalRealm:
    started: deque[float] = field(default_factory=deque)
    leases: set[str] = field(default_factory=set)
    paused_until: float = 0.0


class LocalLedger:
    """The ledger of one process, in memory."""

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self._realms: dict[str, _LocalRealm] = {}

    def _realm(self, realm_id: str) -> _LocalRealm:
        realm = self._realms.get(realm_id)
        if realm is None:
            realm = self._realms[realm_id] = _LocalRealm()
        return realm

    async def take(
        self, realm_id: str, holder: str, priority: Priority, waiting: Priority | None
    ) -> float | None:
        realm = self._realm(realm_id)
        now = time.monotonic()
        if realm.paused_until > now:
            return realm.paused_until - now
        limits = self.limits.for_priority(priority)
        while realm.started and realm.started[0] <= now - self.limits.longest:
            realm.started.popleft()
        if limits.concurrent is not None and len(realm.leases) >= limits.concurrent:
            return float("inf")  # until a release
        for window in limits.windows:
            recent = [t for t in realm.started if t > now - window.seconds]
            if len(recent) >= window.requests:
                return recent[len(recent) - window.requests] + window.seconds - now
        realm.started.append(now)
        realm.leases.add(holder)
        return None

    async def give_back(self, realm_id: str, holder: str) -> None:
        self._realm(realm_id).leases.discard(holder)

    async def pause(self, realm_id: str, seconds: float) -> None:
        realm = self._realm(realm_id)
        realm.paused_until = max(realm.paused_until, time.monotonic() + seconds)


@dataclass
class _Queue:
    waiters: list[tuple[int, int, asyncio.Future[str]]] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    asking: Priority | None = None  # the priority of the pump's request under way
    pump: asyncio.Task[None] | None = None


class RealmBudget:
    """The local layer: a priority queue per realm in this process, served by one pump per
    realm from the ledger (``shared``, or an in-memory one for this process alone)."""

    def __init__(self, limits: RequestLimits, *, shared: Ledger | None = None) -> None:
        self.limits = limits
        self.ledger: Ledger = shared if shared is not None else LocalLedger(limits)
        self._queues: dict[str, _Queue] = {}
        self._seq = itertools.count()
        self._background: set[asyncio.Task[None]] = set()
        self.throttle_pauses = 0

    @asynccontextmanager
    async def slot(self, realm_id: str, priority: Priority) -> AsyncIterator[None]:
        queue = self._queues.get(realm_id)
        if queue is None:
            queue = self._queues[realm_id] = _Queue()
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        heapq.heappush(queue.waiters, (int(priority), next(self._seq), future))
        if queue.pump is None or queue.pump.done():
            queue.pump = asyncio.create_task(self._pump(realm_id, queue))
        elif queue.asking is None or priority < queue.asking:
            queue.wake.set()  # more urgent than what the pump waits for: ask again now
        try:
            holder = await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():  # granted as we were cancelled
                self._release(realm_id, future.result())
            raise
        try:
            yield
        finally:
            self._release(realm_id, holder)

    def waiting(self, realm_id: str) -> Counter[Priority]:
        """How many callers in this process wait for a slot of the realm, by priority."""
        queue = self._queues.get(realm_id)
        if queue is None:
            return Counter()
        return Counter(Priority(p) for p, _, f in queue.waiters if not f.done())

    def waiting_everywhere(self) -> Counter[Priority]:
        """``waiting`` summed over every realm (the metrics' queue gauge)."""
        total: Counter[Priority] = Counter()
        for realm_id in list(self._queues):
            total.update(self.waiting(realm_id))
        return total

    async def throttled(self, realm_id: str, seconds: float) -> None:
        """The platform throttled the realm: pause it (in every replica when shared)."""
        self.throttle_pauses += 1
        await self.ledger.pause(realm_id, seconds)

    async def close(self) -> None:
        """At shutdown, once no call is left: hand back the leases still being released
        (one lost here would lapse only when its lease expires)."""
        for queue in self._queues.values():
            if queue.pump is not None:
                queue.pump.cancel()
                with suppress(asyncio.CancelledError):
                    await queue.pump
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    @staticmethod
    def _head(queue: _Queue) -> tuple[int, int, asyncio.Future[str]] | None:
        while queue.waiters and queue.waiters[0][2].done():  # cancelled while waiting
            heapq.heappop(queue.waiters)
        return queue.waiters[0] if queue.waiters else None

    @staticmethod
    def _next_priority(queue: _Queue) -> Priority | None:
        """The most urgent priority that would still wait after the head is served."""
        rest = [p for p, _, f in queue.waiters[1:] if not f.done()]
        return Priority(min(rest)) if rest else None

    async def _pump(self, realm_id: str, queue: _Queue) -> None:
        """Serves the realm's queue, most urgent first, until it is empty."""
        while (head := self._head(queue)) is not None:
            priority = Priority(head[0])
            holder = uuid.uuid4().hex
            queue.wake.clear()
            queue.asking = priority
            try:
                retry_in = await self.ledger.take(
                    realm_id, holder, priority, self._next_priority(queue)
                )
            except asyncio.CancelledError:
                self._release(realm_id, holder)  # the statement may still have granted
                raise
            except Exception:
                log.warning(
                    "request budget unavailable; trying again",
                    extra={"realm_id": realm_id},
                    exc_info=True,
                )
                self._release(realm_id, holder)  # in case the grant landed after all
                retry_in = 0.5
            finally:
                queue.asking = None
            if retry_in is None:
                # Granted: to whoever is first now (a payment that arrived meanwhile may
                # use a slot asked for bulk work; never the other way round).
                head = self._head(queue)
                if head is None:
                    self._release(realm_id, holder)
                else:
                    heapq.heappop(queue.waiters)
                    head[2].set_result(holder)
                continue
            queue.asking = priority
            with suppress(TimeoutError):
                async with asyncio.timeout(retry_in if retry_in != float("inf") else None):
                    await queue.wake.wait()
            queue.asking = None

    def _release(self, realm_id: str, holder: str) -> None:
        """Hands a slot back off the caller's path; the realm's pump asks again once the
        ledger has it."""
        self._spawn(self._give_back(realm_id, holder))

    async def _give_back(self, realm_id: str, holder: str) -> None:
        try:
            await self.ledger.give_back(realm_id, holder)
        except Exception:  # a shared lease lapses on its own
            log.warning(
                "could not release a request slot; its lease expires by itself",
                extra={"realm_id": realm_id},
                exc_info=True,
            )
        queue = self._queues.get(realm_id)
        if queue is not None:
            queue.wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


# Times are the database's clock (epoch seconds), the one clock all replicas share.
# ``statement_timestamp()`` (when the statement began, before any wait for the row lock)
# decides what has expired, which can only keep an entry a little longer; the start
# recorded is ``clock_timestamp()``, the moment of the grant.
#
# ``cur`` locks the row (the latest version, whatever the statement's snapshot); ``live``
# drops what has expired; ``why`` is NULL when the request may start, else the seconds
# after which asking again is worth it. Reasons, in order: a pause; another replica waits
# with more urgent work; the concurrency; a window (until enough of its starts leave it).
# The row then gets the grant (a start, a lease) or this replica's wait (its priority,
# until a little after it will ask again).
_TAKE = text(
    """
    WITH n AS (
        SELECT extract(epoch FROM statement_timestamp())::float8 AS now,
               extract(epoch FROM clock_timestamp())::float8 AS clock
    ),
    cur AS (
        SELECT b.started, b.leases, b.waits, b.paused_until
        FROM integration.request_budgets AS b
        WHERE b.provider = :provider AND b.realm_id = :realm
        FOR UPDATE
    ),
    live AS (
        SELECT n.now, n.clock, cur.paused_until,
            ARRAY(SELECT t FROM unnest(cur.started) AS t WHERE t > n.now - :keep) AS started,
            (SELECT coalesce(jsonb_object_agg(k, v), '{}'::jsonb)
             FROM jsonb_each(cur.leases) AS l(k, v) WHERE v::float8 > n.now) AS leases,
            (SELECT coalesce(jsonb_object_agg(k, v), '{}'::jsonb)
             FROM jsonb_each(cur.waits) AS w(k, v)
             WHERE (v ->> 1)::float8 > n.now AND k <> :replica) AS waits
        FROM cur, n
    ),
    why AS (
        SELECT live.*, CASE
            WHEN live.paused_until > live.now THEN live.paused_until - live.now
            WHEN EXISTS (
                SELECT 1 FROM jsonb_each(live.waits) AS w(k, v)
                WHERE (v ->> 0)::int < :priority
            ) THEN :poll
            WHEN CAST(:concurrent AS integer) IS NOT NULL
                AND (SELECT count(*) FROM jsonb_object_keys(live.leases)) >= :concurrent
                THEN :poll
            ELSE (
                SELECT min(s.t + w.secs - live.now)
                FROM unnest(CAST(:win_secs AS float8[]), CAST(:win_caps AS integer[]))
                    AS w(secs, caps),
                LATERAL (
                    SELECT t FROM unnest(live.started) AS t WHERE t > live.now - w.secs
                    ORDER BY t DESC OFFSET w.caps - 1 LIMIT 1
                ) AS s
            )
        END AS retry_in
        FROM live
    ),
    done AS (
        UPDATE integration.request_budgets AS b
        SET started = CASE WHEN why.retry_in IS NULL
                THEN array_append(why.started, why.clock) ELSE why.started END,
            leases = CASE WHEN why.retry_in IS NULL
                THEN why.leases || jsonb_build_object(CAST(:holder AS text), why.clock + :lease)
                ELSE why.leases END,
            waits = (
                SELECT coalesce(jsonb_object_agg(k, v), '{}'::jsonb)
                FROM jsonb_each(b.waits) AS w(k, v)
                WHERE (v ->> 1)::float8 > why.now AND k <> :replica
            ) || CASE
                WHEN why.retry_in IS NOT NULL THEN jsonb_build_object(
                    CAST(:replica AS text),
                    jsonb_build_array(:priority, why.now + why.retry_in + :grace))
                WHEN CAST(:waiting AS integer) IS NOT NULL THEN jsonb_build_object(
                    CAST(:replica AS text), jsonb_build_array(:waiting, why.now + :grace))
                ELSE '{}'::jsonb
            END
        FROM why
        WHERE b.provider = :provider AND b.realm_id = :realm
        RETURNING why.retry_in
    )
    SELECT retry_in FROM done
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
    """The company-wide ledger: every replica's requests for a realm, counted in PostgreSQL.

    A refusal says how long to wait: until the pause ends, until enough starts leave a
    window, or (concurrency, or another replica waiting with more urgent work) a short
    poll (``poll_seconds``, jittered); a release in this process wakes its queue sooner.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        provider: str,
        limits: RequestLimits,
        *,
        lease_seconds: float = 120.0,
        margin_seconds: float = 1.0,  # added to every window, for network delays
        poll_seconds: float = 0.05,
        wait_grace_seconds: float = 2.0,
    ) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self.provider = provider
        self.limits = limits
        self.lease_seconds = lease_seconds
        self.margin_seconds = margin_seconds
        self.poll_seconds = poll_seconds
        self.wait_grace_seconds = wait_grace_seconds
        self.replica = uuid.uuid4().hex  # this process, in the row's ``waits``

    async def take(
        self, realm_id: str, holder: str, priority: Priority, waiting: Priority | None
    ) -> float | None:
        limits = self.limits.for_priority(priority)
        params = {
            "provider": self.provider,
            "realm": realm_id,
            "holder": holder,
            "replica": self.replica,
            "priority": int(priority),
            "waiting": None if waiting is None else int(waiting),
            "concurrent": limits.concurrent,
            "win_secs": [w.seconds + self.margin_seconds for w in limits.windows],
            "win_caps": [w.requests for w in limits.windows],
            "keep": self.limits.longest + self.margin_seconds,
            "lease": self.lease_seconds,
            "poll": self.poll_seconds,
            "grace": self.wait_grace_seconds,
        }
        async with self._engine.connect() as conn:
            row = (await conn.execute(_TAKE, params)).first()
            if row is None:  # the company's first request: its row, then ask again
                await conn.execute(_CREATE, params)
                row = (await conn.execute(_TAKE, params)).first()
        assert row is not None
        retry_in: float | None = row[0]
        if retry_in is None:
            return None
        # Never early; spread over a poll so that replicas refused together do not all
        # ask again at the same instant.
        return max(retry_in, 0.0) + random.uniform(0.0, self.poll_seconds)

    async def give_back(self, realm_id: str, holder: str) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(
                _RELEASE, {"provider": self.provider, "realm": realm_id, "holder": holder}
            )

    async def pause(self, realm_id: str, seconds: float) -> None:
        async with self._engine.connect() as conn:
            await conn.execute(
                _PAUSE, {"provider": self.provider, "realm": realm_id, "seconds": seconds}
            )
