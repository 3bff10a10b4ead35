"""One request budget per realm, shared by backfill, CDC and webhook fetches.

Intuit allows 500 requests per minute and 10 concurrent requests per realm and app. Every
call to the QBO API takes a slot here first: at most ``concurrent`` in flight, at most
``per_minute`` started in any rolling minute, and while Intuit has throttled the realm
(429) nobody starts a request until the pause is over. Waiters are served by priority
(payments first: they stop outreach) and then in arrival order.

The budget is per process; with several integration replicas, configure each with its
share (``AICOLLECT_QBO_REQUESTS_PER_MINUTE``), or rely on the 429 handling when they meet.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from enum import IntEnum


class Priority(IntEnum):
    """Lower runs first."""

    PAYMENT = 0  # a payment fetch can stop outreach
    WEBHOOK = 1  # other entities named by a webhook
    CDC = 2  # the safety-net poll
    BACKFILL = 3  # bulk pulls


@dataclass
class _Realm:
    started: deque[float] = field(default_factory=deque)
    in_flight: int = 0
    paused_until: float = 0.0
    waiters: list[tuple[int, int, asyncio.Future[None]]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class RealmBudget:
    def __init__(self, *, per_minute: int | None = 500, concurrent: int | None = 10) -> None:
        self.per_minute = per_minute
        self.concurrent = concurrent
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
            yield
        finally:
            realm.in_flight -= 1
            self._dispatch(realm_id)

    def pause(self, realm_id: str, seconds: float) -> None:
        """Intuit throttled the realm: start nothing for it until ``seconds`` have passed."""
        realm = self._realm(realm_id)
        realm.paused_until = max(realm.paused_until, time.monotonic() + seconds)
        self.throttle_pauses += 1
        self._dispatch(realm_id)

    def _dispatch(self, realm_id: str) -> None:
        realm = self._realms[realm_id]
        now = time.monotonic()
        while realm.started and now - realm.started[0] >= 60.0:
            realm.started.popleft()
        while realm.waiters:
            _, _, future = realm.waiters[0]
            if future.done():  # cancelled while waiting
                heapq.heappop(realm.waiters)
                continue
            wake_at = self._blocked_until(realm, now)
            if wake_at is not None:
                if wake_at > now:
                    self._arm(realm_id, realm, wake_at - now)
                return  # blocked on concurrency: a release dispatches again
            heapq.heappop(realm.waiters)
            realm.in_flight += 1
            realm.started.append(now)
            future.set_result(None)

    def _blocked_until(self, realm: _Realm, now: float) -> float | None:
        """None when a request may start now; else when to look again (now: on release)."""
        if realm.paused_until > now:
            return realm.paused_until
        if self.concurrent is not None and realm.in_flight >= self.concurrent:
            return now
        if self.per_minute is not None and len(realm.started) >= self.per_minute:
            return realm.started[0] + 60.0
        return None

    def _arm(self, realm_id: str, realm: _Realm, delay: float) -> None:
        if realm.timer is not None:
            realm.timer.cancel()
        realm.timer = asyncio.get_running_loop().call_later(delay + 0.001, self._dispatch, realm_id)
