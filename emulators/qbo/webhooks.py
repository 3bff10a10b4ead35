"""Signed webhook delivery, the way Intuit delivers them.

Each app has one FIFO queue.  A worker takes up to ``webhook_max_events`` events (after
the batch window, if any), POSTs them in the app's format, signed with ``intuit-signature``,
and waits for a 200 within ``webhook_timeout``.  Anything else is retried on Intuit's
schedule (scaled by ``webhook_time_scale``) with the same body, and later events of that
app wait behind it: head-of-line blocking, as Intuit documents.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from emulators.qbo.clock import Clock, format_utc_millis, format_utc_nanos
from emulators.qbo.config import EmulatorConfig
from emulators.qbo.faults import FaultBox
from emulators.qbo.model import Change
from emulators.qbo.oauth import App, OAuthState

log = logging.getLogger(__name__)

_PAST_TENSE = {"Create": "created", "Update": "updated", "Delete": "deleted", "Void": "voided"}
MAX_LOG = 10_000


def sign(verifier_token: str, body: bytes) -> str:
    """``intuit-signature``: base64 HMAC-SHA256 of the raw body, keyed by the verifier token."""
    digest = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(verifier_token: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of an ``intuit-signature`` header."""
    if not signature:
        return False
    try:
        given = base64.b64decode(signature, validate=True)
    except ValueError:
        return False
    expected = hmac.new(verifier_token.encode(), body, hashlib.sha256).digest()
    return hmac.compare_digest(given, expected)


@dataclass(slots=True)
class Event:
    id: str
    change: Change

    def cloudevent(self, source: str) -> dict[str, Any]:
        change = self.change
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": source,
            "type": f"qbo.{change.kind.lower()}.{_PAST_TENSE[change.operation]}.v1",
            "datacontenttype": "application/json",
            "time": format_utc_nanos(change.at_ns or int(change.at * 1e9)),
            "intuitentityid": change.entity_id,
            "intuitaccountid": change.realm_id,
            "data": {},
        }

    def legacy_entity(self) -> dict[str, Any]:
        change = self.change
        return {
            "name": change.kind,
            "id": change.entity_id,
            "operation": change.operation,
            "lastUpdated": format_utc_millis(change.at),
        }


def cloudevents_source(client_id: str) -> str:
    return "intuit." + base64.b64encode(hashlib.sha256(client_id.encode()).digest()).decode()


def render(app: App, events: list[Event]) -> tuple[bytes, str]:
    """The POST body and content type for ``events`` in the app's format."""
    if app.webhook_format == "legacy":
        notifications: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            notifications.setdefault(event.change.realm_id, []).append(event.legacy_entity())
        payload: Any = {
            "eventNotifications": [
                {"realmId": realm, "dataChangeEvent": {"entities": entities}}
                for realm, entities in notifications.items()
            ]
        }
        content_type = "application/json"
    else:
        source = cloudevents_source(app.client_id)
        payload = [event.cloudevent(source) for event in events]
        content_type = "application/cloudevents+json"
    return json.dumps(payload, separators=(",", ":")).encode(), content_type


@dataclass(slots=True)
class AppQueue:
    client_id: str
    pending: deque[Event] = field(default_factory=deque)
    in_flight: list[Event] = field(default_factory=list)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    delivered: int = 0
    failures: int = 0


class Dispatcher:
    def __init__(
        self, config: EmulatorConfig, clock: Clock, oauth: OAuthState, faults: FaultBox
    ) -> None:
        self.config = config
        self.clock = clock
        self.oauth = oauth
        self.faults = faults
        self.batch_window = config.webhook_batch_window
        self.time_scale = config.webhook_time_scale
        self.timeout = config.webhook_timeout
        self.queues: dict[str, AppQueue] = {}
        self.log: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)
        self.dropped: deque[dict[str, Any]] = deque(maxlen=MAX_LOG)
        self._seq = 0
        self._ids_issued = 0  # never reset: ids stay unique for the emulator's lifetime
        self._session: aiohttp.ClientSession | None = None
        self._running = False
        self._timers: set[asyncio.TimerHandle] = set()
        self._progress = asyncio.Event()  # set whenever a queue moves

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

    def on_change(self, change: Change) -> None:
        change.at_ns = change.at_ns or int(change.at * 1e9)
        now = self.clock.time()
        connected = self.oauth.connected_apps(change.realm_id, now)
        for client_id in sorted(connected):
            app = self.oauth.apps.get(client_id)
            if app is None or not app.webhook_url:
                continue
            self._intake(app, Event(self._new_id(), change))

    def _new_id(self) -> str:
        # Event ids come from the seeded dice, so a seeded scenario on a fresh emulator is
        # repeatable; the lifetime counter keeps them unique when the faults (and so the
        # dice) are reset, as Intuit's ids are.
        self._ids_issued += 1
        bits = self.faults.rng.getrandbits(128) ^ (self._ids_issued << 64)
        return str(uuid.UUID(int=bits & ((1 << 128) - 1), version=4))

    def _intake(self, app: App, event: Event) -> None:
        faults = self.faults
        settings = faults.faults
        if faults.roll(settings.webhook_drop_rate):
            faults.count("webhook_drop")
            self._record_drop(app.client_id, event, "dropped by fault injection")
            return
        copies = [event]
        if faults.roll(settings.webhook_duplicate_rate):
            faults.count("webhook_duplicate")
            copies.append(Event(self._new_id(), event.change))
        for copy in copies:
            if faults.roll(settings.webhook_delay_rate):
                faults.count("webhook_delay")
                self._later(settings.webhook_delay_seconds, app.client_id, copy)
            else:
                self._enqueue(app.client_id, copy)

    def _later(self, delay: float, client_id: str, event: Event) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            self._enqueue(client_id, event)
            self._progress.set()

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    def _enqueue(self, client_id: str, event: Event) -> None:
        queue = self.queues.get(client_id)
        if queue is None:
            queue = self.queues[client_id] = AppQueue(client_id)
        if queue.pending and self.faults.roll(self.faults.faults.webhook_reorder_rate):
            self.faults.count("webhook_reorder")
            last = queue.pending.pop()
            queue.pending.append(event)
            queue.pending.append(last)
        else:
            queue.pending.append(event)
        queue.wakeup.set()
        self._ensure_worker(queue)

    def _ensure_worker(self, queue: AppQueue) -> None:
        if self._running and (queue.task is None or queue.task.done()):
            queue.task = asyncio.get_running_loop().create_task(
                self._worker(queue), name=f"webhooks:{queue.client_id}"
            )

    def _record_drop(self, client_id: str, event: Event, reason: str) -> None:
        self.dropped.append(
            {
                "client_id": client_id,
                "event_id": event.id,
                "realm_id": event.change.realm_id,
                "entity": event.change.kind,
                "entity_id": event.change.entity_id,
                "operation": event.change.operation,
                "reason": reason,
            }
        )

    # -- delivery -----------------------------------------------------------------------

    def retry_delay(self, failures: int) -> float:
        """Seconds before attempt ``failures + 1`` (Intuit's schedule, scaled)."""
        schedule = self.config.retry_schedule
        return schedule[min(failures - 1, len(schedule) - 1)] * self.time_scale

    async def _worker(self, queue: AppQueue) -> None:
        while True:
            if not queue.pending:
                queue.wakeup.clear()
                self._progress.set()
                await queue.wakeup.wait()
                continue
            if self.batch_window > 0:
                await asyncio.sleep(self.batch_window)
            batch = [
                queue.pending.popleft()
                for _ in range(min(len(queue.pending), self.config.webhook_max_events))
            ]
            queue.in_flight = batch
            await self._deliver(queue, batch)
            queue.in_flight = []
            self._progress.set()

    async def _deliver(self, queue: AppQueue, batch: list[Event]) -> None:
        batch_id = self._new_id()
        body: bytes | None = None
        failures = 0
        while True:
            app = self.oauth.apps.get(queue.client_id)
            batch = self._still_connected(app, batch)
            if app is None or not app.webhook_url or not batch:
                return
            if body is None:
                body, content_type = render(app, batch)
            ok = await self._attempt(app, batch_id, batch, body, content_type, failures + 1)
            if ok:
                queue.delivered += len(batch)
                return
            failures += 1
            queue.failures += 1
            await asyncio.sleep(self.retry_delay(failures))

    def _still_connected(self, app: App | None, batch: list[Event]) -> list[Event]:
        now = self.clock.time()
        keep: list[Event] = []
        for event in batch:
            if app is not None and app.client_id in self.oauth.connected_apps(
                event.change.realm_id, now
            ):
                keep.append(event)
            else:
                self._record_drop(
                    app.client_id if app else "?", event, "the app is no longer connected"
                )
        return keep

    async def _attempt(
        self,
        app: App,
        batch_id: str,
        batch: list[Event],
        body: bytes,
        content_type: str,
        attempt: int,
    ) -> bool:
        assert self._session is not None
        assert app.webhook_url is not None
        headers = {
            "Content-Type": content_type,
            "intuit-signature": sign(app.verifier_token, body),
            "User-Agent": "Intuit-Webhooks-Emulator/1.0",
        }
        started = self.clock.time()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        status: int | None = None
        error: str | None = None
        try:
            async with self._session.post(
                app.webhook_url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                status = response.status
                await response.read()
        except TimeoutError:
            error = f"no answer within {self.timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status == 200
        self._seq += 1
        self.log.append(
            {
                "seq": self._seq,
                "client_id": app.client_id,
                "url": app.webhook_url,
                "batch_id": batch_id,
                "attempt": attempt,
                "at": format_utc_millis(started),
                "duration_ms": round((loop.time() - t0) * 1000, 3),
                "status": status,
                "error": error,
                "ok": ok,
                "format": app.webhook_format,
                "body_bytes": len(body),
                "event_ids": [e.id for e in batch],
                "events": [
                    {
                        "realm_id": e.change.realm_id,
                        "entity": e.change.kind,
                        "id": e.change.entity_id,
                        "operation": e.change.operation,
                    }
                    for e in batch
                ],
            }
        )
        return ok

    # -- observing ----------------------------------------------------------------------

    def busy(self) -> bool:
        return bool(self._timers) or any(q.pending or q.in_flight for q in self.queues.values())

    async def wait_idle(self) -> None:
        """Wait until every queue is empty and no delivery or delayed event is outstanding.

        Bound it with ``asyncio.timeout``: an endpoint that keeps failing never gets there.
        """
        while self.busy():
            self._progress.clear()
            await self._progress.wait()

    def status(self) -> dict[str, Any]:
        return {
            "batch_window": self.batch_window,
            "time_scale": self.time_scale,
            "timeout": self.timeout,
            "apps": {
                q.client_id: {
                    "pending": len(q.pending),
                    "in_flight": len(q.in_flight),
                    "delivered_events": q.delivered,
                    "failed_attempts": q.failures,
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


ChangeListener = Callable[[Change], None]
