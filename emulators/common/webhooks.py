"""Signed webhook delivery with retries, shared by the emulators.

Each app has one FIFO queue.  A worker takes up to ``max_events`` events (after the batch
window, if any), asks the provider's :class:`Channel` for the body and headers (its format,
its signature), POSTs them and waits for a 200 within ``timeout``.  Anything else is retried
on the provider's schedule (scaled by ``time_scale``) with the same body, and later events
of that app wait behind it: head-of-line blocking.  A provider that gives up after a while
(``give_up_after``) pauses the app's queue and tells its channel; :meth:`Dispatcher.resume`
restarts it, with or without the events that were waiting.

The fault dice decide drops, duplicates, reordering and delays at intake.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import aiohttp

from emulators.common.clock import Clock
from emulators.common.faults import FaultBox, Faults

MAX_LOG = 10_000
C = TypeVar("C")


def hmac_sha256_b64(key: str, body: bytes) -> str:
    """base64(HMAC-SHA256(key, body)): both Intuit's and Xero's webhook signature."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def verify_hmac_sha256_b64(key: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of a base64 HMAC-SHA256 signature header."""
    if not signature:
        return False
    try:
        given = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    expected = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


def utc_millis(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Event(Generic[C]):
    id: str
    change: C
    seq: int = 0  # the app's event sequence number (Xero numbers its events)


class Channel(Protocol[C]):
    """What a provider tells the dispatcher."""

    def webhook_url(self, client_id: str) -> str | None:
        """Where the app's webhooks go; None: the app is gone or has no webhook URL."""

    def connected(self, client_id: str, change: C) -> bool:
        """Whether the app still may hear about this change (its connection is live)."""

    def render(self, client_id: str, events: list[Event[C]]) -> tuple[bytes, dict[str, str]]:
        """The POST body and headers (content type, signature) for ``events``."""

    def describe(self, change: C) -> dict[str, Any]:
        """The change, for the delivery log."""

    def gave_up(self, client_id: str) -> None:
        """Delivery failed for ``give_up_after`` seconds (scaled); the queue is paused."""


@dataclass(slots=True)
class AppQueue(Generic[C]):
    client_id: str
    pending: deque[Event[C]] = field(default_factory=deque)
    in_flight: list[Event[C]] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    failures: int = 0
    paused: bool = False
    seq: int = 0


class WebhookSettings(Protocol):
    """The webhook part of an emulator's configuration."""

    @property
    def webhook_batch_window(self) -> float: ...

    @property
    def webhook_time_scale(self) -> float: ...

    @property
    def webhook_timeout(self) -> float: ...

    @property
    def webhook_max_events(self) -> int: ...

    @property
    def retry_schedule(self) -> tuple[float, ...]: ...


@dataclass(slots=True)
class Timing:
    """The dispatcher's knobs; a provider's settings endpoint changes them at run time."""

    batch_window: float  # seconds to collect events before a POST; 0 = at once
    time_scale: float  # multiplies the retry schedule (and give_up_after)
    timeout: float  # an answer later than this counts as a failure
    max_events: int
    retry_schedule: tuple[float, ...]
    give_up_after: float | None = None  # seconds of failing (unscaled); None: never

    @classmethod
    def of(cls, config: WebhookSettings, give_up_after: float | None = None) -> Timing:
        timing = cls(0.0, 1.0, 1.0, config.webhook_max_events, config.retry_schedule)
        timing.follow(config, give_up_after)
        return timing

    def follow(self, config: WebhookSettings, give_up_after: float | None = None) -> None:
        """Take the settings that can change at run time."""
        self.batch_window = config.webhook_batch_window
        self.time_scale = config.webhook_time_scale
        self.timeout = config.webhook_timeout
        self.give_up_after = give_up_after


class Dispatcher(Generic[C]):
    def __init__(
        self, timing: Timing, clock: Clock, faults: FaultBox[Any], channel: Channel[C]
    ) -> None:
        self.timing = timing
        self.clock = clock
        self.faults = faults
        self.channel = channel
        self.queues: dict[str, AppQueue[C]] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)
        self.dropped: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)
        self._seq = 0
        self._ids_issued = 0  # never reset: ids stay unique for the emulator's lifetime
        self._session: aiohttp.ClientSession | None = None
        self._running = False
        self._timers: set[asyncio.TimerHandle] = set()
        self._progress = asyncio.Event()  # set whenever a queue moves
        self.user_agent = "Webhooks-Emulator/1.0"

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "the dispatcher is not started"
        return self._session

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._session = aiohttp.ClientSession()
        self._running = True
        for queue in self.queues.values():
            self._ensure_worker(queue)

    async def stop(self) -> None:
        self._running = False
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = [q.task for q in self.queues.values() if q.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for queue in self.queues.values():
            queue.task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for queue in self.queues.values():
            if queue.task is not None:
                queue.task.cancel()
        self.queues.clear()
        self.log.clear()
        self.dropped.clear()
        self._progress.set()

    # -- intake -------------------------------------------------------------------------

    def publish(self, client_id: str, change: C) -> None:
        """Queue ``change`` for one app (the provider picks the apps)."""
        self._intake(client_id, Event(self.new_id(), change))

    def new_id(self) -> str:
        # Ids come from the seeded dice, so a seeded scenario on a fresh emulator is
        # repeatable; the lifetime counter keeps them unique when the faults (and so the
        # dice) are reset. It replaces the low 48 bits (the UUID's node), which setting the
        # version and variant never touches: mixed in higher up, 4 of its bits were
        # overwritten, and ids 4,096 apart repeated after a reset (a receiver deduplicating
        # by id then dropped a real change).
        self._ids_issued += 1
        node = (1 << 48) - 1
        bits = (self.faults.rng.getrandbits(128) & ~node) | (self._ids_issued & node)
        return str(uuid.UUID(int=bits, version=4))

    def _intake(self, client_id: str, event: Event[C]) -> None:
        faults = self.faults
        settings: Faults = faults.faults
        if faults.roll(settings.webhook_drop_rate):
            faults.count("webhook_drop")
            self._record_drop(client_id, event, "dropped by fault injection")
            return
        copies = [event]
        if faults.roll(settings.webhook_duplicate_rate):
            faults.count("webhook_duplicate")
            copies.append(Event(self.new_id(), event.change))
        for copy in copies:
            if faults.roll(settings.webhook_delay_rate):
                faults.count("webhook_delay")
                self._later(settings.webhook_delay_seconds, client_id, copy)
            else:
                self._enqueue(client_id, copy)

    def _later(self, delay: float, client_id: str, event: Event[C]) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self._enqueue(client_id, event)
            self._progress.set()

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _queue(self, client_id: str) -> AppQueue[C]:
        queue = self.queues.get(client_id)
        if queue is None:
            queue = self.queues[client_id] = AppQueue(client_id)
        return queue

    def _enqueue(self, client_id: str, event: Event[C]) -> None:
        queue = self._queue(client_id)
        queue.seq += 1
        event.seq = queue.seq
        if queue.pending and self.faults.roll(self.faults.faults.webhook_reorder_rate):
            self.faults.count("webhook_reorder")
            last = queue.pending.pop()
            queue.pending.append(event)
            queue.pending.append(last)
        else:
            queue.pending.append(event)
        queue.wakeup.set()
        self._ensure_worker(queue)

    def _ensure_worker(self, queue: AppQueue[C]) -> None:
        if self._running and (queue.task is None or queue.task.done()):
            queue.task = asyncio.get_running_loop().create_task(
                self._worker(queue), name=f"webhooks:{queue.client_id}"
            )

    def _record_drop(self, client_id: str, event: Event[C], reason: str) -> None:
        self.dropped.append(
            {
                "client_id": client_id,
                "event_id": event.id,
                **self.channel.describe(event.change),
                "reason": reason,
            }
        )

    # -- delivery -----------------------------------------------------------------------

    def retry_delay(self, failures: int) -> float:
        """Seconds before attempt ``failures + 1`` (the provider's schedule, scaled)."""
        schedule = self.timing.retry_schedule
        return schedule[min(failures - 1, len(schedule) - 1)] * self.timing.time_scale

    async def _worker(self, queue: AppQueue[C]) -> None:
        while True:
            if not queue.pending or queue.paused:
                queue.wakeup.clear()
                self._progress.set()
                await queue.wakeup.wait()
                continue
            if self.timing.batch_window > 0:
                await asyncio.sleep(self.timing.batch_window)
            batch = [
                queue.pending.popleft()
                for _ in range(min(len(queue.pending), self.timing.max_events))
            ]
            queue.in_flight = batch
            delivered = await self._deliver(queue, batch)
            if not delivered:
                # Given up: the batch goes back to the front and the queue waits.
                queue.pending.extendleft(reversed(batch))
                queue.paused = True
                self.channel.gave_up(queue.client_id)
            queue.in_flight = []
            self._progress.set()

    async def _deliver(self, queue: AppQueue[C], batch: list[Event[C]]) -> bool:
        """True once the batch is acknowledged (or nothing is left to send); False when
        the provider gives up."""
        batch_id = self.new_id()
        body: bytes | None = None
        headers: dict[str, str] = {}
        failures = 0
        failing_since = asyncio.get_running_loop().time()
        while True:
            url = self.channel.webhook_url(queue.client_id)
            batch = self._still_connected(queue.client_id, batch)
            if url is None or not batch:
                return True
            if body is None:
                body, headers = self.channel.render(queue.client_id, batch)
            ok = await self._attempt(
                queue.client_id, url, batch_id, batch, body, headers, failures + 1
            )
            if ok:
                queue.delivered += len(batch)
                return True
            failures += 1
            queue.failures += 1
            give_up = self.timing.give_up_after
            delay = self.retry_delay(failures)
            elapsed = asyncio.get_running_loop().time() - failing_since
            if give_up is not None and elapsed + delay > give_up * self.timing.time_scale:
                return False
            await asyncio.sleep(delay)

    def _still_connected(self, client_id: str, batch: list[Event[C]]) -> list[Event[C]]:
        keep: list[Event[C]] = []
        for event in batch:
            if self.channel.connected(client_id, event.change):
                keep.append(event)
            else:
                self._record_drop(client_id, event, "the app is no longer connected")
        return keep

    async def post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int | None, str | None, float]:
        """One POST: (status or None, error or None, milliseconds)."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        status: int | None = None
        error: str | None = None
        try:
            async with self.session.post(
                url,
                data=body,
                headers={"User-Agent": self.user_agent, **headers},
                timeout=aiohttp.ClientTimeout(total=self.timing.timeout),
            ) as response:
                status = response.status
                await response.read()
        except TimeoutError:
            error = f"no answer within {self.timing.timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        return status, error, round((loop.time() - t0) * 1000, 3)

    async def _attempt(
        self,
        client_id: str,
        url: str,
        batch_id: str,
        batch: list[Event[C]],
        body: bytes,
        headers: dict[str, str],
        attempt: int,
    ) -> bool:
        started = self.clock.time()
        status, error, duration_ms = await self.post(url, body, headers)
        ok = status == 200
        self._seq += 1
        self.log.append(
            {
                "seq": self._seq,
                "client_id": client_id,
                "url": url,
                "batch_id": batch_id,
                "attempt": attempt,
                "at": utc_millis(started),
                "duration_ms": duration_ms,
                "status": status,
                "error": error,
                "ok": ok,
                "body_bytes": len(body),
                "event_ids": [e.id for e in batch],
                "events": [self.channel.describe(e.change) for e in batch],
            }
        )
        return ok

    # -- pausing ------------------------------------------------------------------------

    def resume(self, client_id: str, *, replay: bool) -> int:
        """Restart a paused queue; without ``replay`` the waiting events are discarded.
        Returns how many events were waiting."""
        queue = self._queue(client_id)
        waiting = len(queue.pending)
        if not replay:
            while queue.pending:
                self._record_drop(client_id, queue.pending.popleft(), "discarded on re-enable")
        queue.paused = False
        queue.wakeup.set()
        self._ensure_worker(queue)
        return waiting

    # -- observing ----------------------------------------------------------------------

    def busy(self) -> bool:
        return bool(self._timers) or any(
            (q.pending and not q.paused) or q.in_flight for q in self.queues.values()
        )

    async def wait_idle(self) -> None:
        """Wait until every queue is empty (or paused) and no delivery or delayed event is
        outstanding.  Bound it with ``asyncio.timeout``: an endpoint that keeps failing
        never gets there."""
        while self.busy():
            self._progress.clear()
            await self._progress.wait()

    def status(self) -> dict[str, Any]:
        timing = self.timing
        return {
            "batch_window": timing.batch_window,
            "time_scale": timing.time_scale,
            "timeout": timing.timeout,
            "apps": {
                q.client_id: {
                    "pending": len(q.pending),
                    "in_flight": len(q.in_flight),
                    "delivered_events": q.delivered,
                    "failed_attempts": q.failures,
                    "paused": q.paused,
                }
                for q in self.queues.values()
            },
            "delayed": len(self._timers),
        }

    def entries(self, client_id: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        return [
            entry
            for entry in self.log
            if entry["seq"] > since and (client_id is None or entry["client_id"] == client_id)
        ]
