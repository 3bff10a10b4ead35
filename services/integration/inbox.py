"""The durable webhook inbox: store before acknowledging, then process in the background.

Ingest: the signature is verified over the raw bytes, the payload parsed, and every
event for a connected realm is inserted in one transaction (duplicates, by event id or by
realm/entity/id/time/operation, are recognised and not stored twice) before the gateway
answers 200. Nothing is stored for a bad signature. A correctly signed body that cannot be
stored as parsed events (malformed, nested too deep, a lone surrogate, anything jsonb
refuses) is stored as its raw bytes, dead-lettered with the reason, and acknowledged: Intuit
retries a refused delivery head-of-line, so refusing it would block every later event. One
delivery never fails another in a shared commit; only a database outage answers 503.

Processing: workers in any number of replicas take one realm at a time (a PostgreSQL
advisory lock, so each realm's events are processed in order by one worker) and claim its
due events with ``FOR UPDATE SKIP LOCKED``. Events carry only ids, so each distinct entity
is read from QBO (once per batch, however many events name it) and applied as now known;
because every decision is taken on the entity's current state, a retried event never
applies stale data. Failures are retried with exponential backoff and, after a bounded
number of attempts, parked as dead letters with the reason (replayable through the admin
service). While the kill switch is on, events keep being stored and wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.db.locks import AdvisoryLock
from aicollect.errors import DomainError, Unavailable
from services.integration import admin
from services.integration.models import Connection, InboxEvent
from services.integration.tokens import CONNECTED, NEEDS_REAUTHORIZATION
from services.integration.webhooks import (
    MalformedWebhook,
    WebhookEvent,
    parse_payload,
    verify_signature,
)

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "qbo_inbox"
# PostgreSQL down, restarting, unreachable or too slow: Intuit must retry (503).
STORAGE_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OperationalError,
    DBAPIError,
)
LIVE_STATES = (CONNECTED, NEEDS_REAUTHORIZATION)

# apply(tenant_id, realm_id, {entity: [ids]}): read the entities from QBO as they are now
# and apply them; raises when any of them could not be applied.
EntityApplier = Callable[[str, str, dict[str, list[str]]], Awaitable[None]]


def _by_entity(groups: dict[tuple[str, str], list[InboxEvent]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for entity, entity_id in groups:
        out.setdefault(entity, []).append(entity_id)
    return out


@dataclass(frozen=True)
class IngestResult:
    stored: int
    duplicates: int
    dropped: int
    dead_lettered: int = 0


@dataclass(frozen=True)
class Delivery:
    """One signed POST for the writer: its relevant events, or (``poison`` says why) none,
    when the body cannot be stored as parsed events; it is then kept as raw bytes."""

    body: bytes
    events: list[WebhookEvent]
    poison: str = ""


# (stored, duplicates, dropped, dead_lettered) of one delivery.
Counts = tuple[int, int, int, int]


def _storage_down() -> Unavailable:
    return Unavailable(
        "the webhook inbox cannot be written right now; Intuit will retry",
        reason="INBOX_UNAVAILABLE",
        retry_after_seconds=10,
    )


# SQLSTATE classes of PostgreSQL refusing the data itself while being up and well: 22 data
# exception (a value jsonb or text refuses), 54 program limit exceeded (nested too deep).
# Any other error (down, restarting, timed out, locked, out of resources) is an outage.
_REFUSED_SQLSTATE_CLASSES = ("22", "54")


def _refused(exc: BaseException) -> bool:
    """True when this delivery's data was refused (dead-letter it); False for an outage (503)."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "").startswith(_REFUSED_SQLSTATE_CLASSES)
    if isinstance(exc, asyncpg.InterfaceError):
        return isinstance(exc, ValueError)  # the driver could not encode an argument
    return isinstance(exc, (UnicodeError, RecursionError, OverflowError))


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DomainError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


def _safe_text(text_: str, limit: int = 500) -> str:
    """Text PostgreSQL accepts (no NUL, no lone surrogate), for reasons and realm ids."""
    return text_[:limit].replace("\x00", "\\u0000").encode("utf-8", "backslashreplace").decode()


class Unstorable(ValueError):
    """An event whose payload cannot be stored as jsonb (found before any statement runs)."""


@dataclass(frozen=True)
class _Rows:
    """One delivery's events with their payloads as stored (checked storable)."""

    events: list[WebhookEvent]
    payloads: list[str]


def _rows(events: list[WebhookEvent]) -> _Rows:
    payloads = []
    for event in events:
        try:
            payload = _jsonb_text(event.raw)
            payload.encode("utf-8")  # a lone surrogate (``\ud800``) cannot be stored
        except UnicodeEncodeError:
            raise Unstorable(
                f"event {event.event_id} holds a lone UTF-16 surrogate, which jsonb refuses"
            ) from None
        except (RecursionError, ValueError) as exc:
            raise Unstorable(f"event {event.event_id} cannot be stored: {exc}") from None
        payloads.append(payload)
    return _Rows(events, payloads)


def _store_args(deliveries: list[_Rows]) -> list[Any]:
    events = [e for rows in deliveries for e in rows.events]
    return [
        [e.event_id for e in events],
        [e.dedupe_key for e in events],
        [e.realm_id for e in events],
        [e.entity for e in events],
        [e.entity_id for e in events],
        [e.operation for e in events],
        [e.occurred_at for e in events],
        [p for rows in deliveries for p in rows.payloads],
        NOTIFY_CHANNEL,
    ]


def _counts(deliveries: list[_Rows], records: list[asyncpg.Record]) -> list[Counts]:
    """What the statement did for each delivery: stored, duplicates, dropped."""
    live = {r["value"] for r in records if r["kind"] == "live"}
    stored_ids = {r["value"] for r in records if r["kind"] == "stored"}
    for realm in {e.realm_id for rows in deliveries for e in rows.events} - live:
        log.info("webhook for an unknown or disconnected realm dropped", extra={"realm_id": realm})
    results = []
    credited: set[str] = set()  # an event in two deliveries of one batch is stored once
    for rows in deliveries:
        stored = duplicates = dropped = 0
        for event in rows.events:
            if event.realm_id not in live:
                dropped += 1
            elif event.event_id in stored_ids and event.event_id not in credited:
                credited.add(event.event_id)
                stored += 1
            else:
                duplicates += 1
        results.append((stored, duplicates, dropped, 0))
    return results


# Where a raw dead letter is filed when its body names no realm (ReplayDeadLetters takes it
# as a realm_id); Intuit's realm ids are numbers, so it cannot be a real one.
UNATTRIBUTED_REALM = "unattributed"
_REALM_IN_BODY = re.compile(rb'"(?:intuitaccountid|realmId)"\s*:\s*"?(\d{1,32})')


def _raw_realm(delivery: Delivery) -> str:
    """The realm a raw delivery is for, as far as it can be told."""
    if delivery.events:
        return delivery.events[0].realm_id
    found = _REALM_IN_BODY.search(delivery.body)
    return found.group(1).decode() if found else UNATTRIBUTED_REALM


def raw_event_id(body: bytes) -> str:
    """A raw dead letter's event id: the same body (Intuit's retry) is the same letter."""
    return f"raw-{hashlib.sha256(body).hexdigest()[:32]}"


class InboxWriter:
    """Stores webhook events durably, committing concurrent deliveries together.

    Every delivery waits for the commit that contains its events (so nothing is
    acknowledged before it is durable), but deliveries that arrive while a commit is under
    way share the next one: one transaction, one multi-row INSERT and one WAL flush for
    many deliveries. Under load this is what lets a PostgreSQL commit per delivery stop
    being the ceiling; when idle, a delivery is written at once.

    One delivery never fails another: each is checked storable before the shared statement,
    and when PostgreSQL refuses the statement's data anyway, every delivery of the group is
    stored on its own. A delivery that cannot be stored as parsed events is stored as a raw
    dead letter (the exact body and why) and acknowledged. Only an outage fails deliveries.
    """

    def __init__(self, database_url: str, *, max_in_flight: int = 3) -> None:
        # The hot path uses asyncpg directly (a small pool of its own): one statement per
        # batch, no ORM, no ping, no separate BEGIN/COMMIT round trips.
        self._dsn = (
            make_url(database_url)
            .set(drivername="postgresql")
            .render_as_string(hide_password=False)
        )
        self._pool: asyncpg.Pool | None = None
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[Delivery, asyncio.Future[Counts]]] = []
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(max_in_flight)
        self._flushes: set[asyncio.Task[None]] = set()
        self.commits = 0

    async def write(self, delivery: Delivery) -> Counts:
        """(stored, duplicates, dropped, dead_lettered) once the delivery is committed."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._dispatcher(), name="inbox-writer")
        future: asyncio.Future[Counts] = asyncio.get_running_loop().create_future()
        self._pending.append((delivery, future))
        self._kick.set()
        return await asyncio.shield(future)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _dispatcher(self) -> None:
        """Hands whatever has accumulated to a free flush slot (a few commits overlap, so
        PostgreSQL's work on one batch overlaps Python's work on the next)."""
        while True:
            await self._kick.wait()
            await self._slots.acquire()
            self._kick.clear()
            batch, self._pending = self._pending, []
            if not batch:
                self._slots.release()
                continue
            task = asyncio.create_task(self._flush(batch))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[tuple[Delivery, asyncio.Future[Counts]]]) -> None:
        try:
            results = await self._store([delivery for delivery, _ in batch])
        except STORAGE_ERRORS as exc:
            log.error("webhook inbox write failed", extra={"error": type(exc).__name__})
            results = [_storage_down()] * len(batch)
        except Exception as exc:  # never leave a delivery waiting forever
            log.exception("webhook inbox write crashed")
            results = [exc] * len(batch)
        finally:
            self._slots.release()
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _store(self, deliveries: list[Delivery]) -> list[Counts | BaseException]:
        """Each delivery's outcome: its counts, or the error it is answered with."""
        results: list[Counts | BaseException] = [(0, 0, 0, 0)] * len(deliveries)
        poison = {i: d.poison for i, d in enumerate(deliveries) if d.poison}
        checked: dict[int, _Rows] = {}
        for i, delivery in enumerate(deliveries):
            if i not in poison:
                try:
                    checked[i] = _rows(delivery.events)
                except Unstorable as exc:
                    poison[i] = str(exc)
        if checked:
            counted: list[Counts | BaseException]
            try:
                counted = list(await self._commit(list(checked.values())))
            except Exception as exc:
                if not _refused(exc):
                    raise  # an outage: every delivery of the group is answered 503
                counted = await self._one_by_one(checked, exc, poison)
            for i, counts in zip(checked, counted, strict=True):
                results[i] = counts
        for i, reason in poison.items():
            try:
                results[i] = await self._dead_letter(deliveries[i], reason)
            except STORAGE_ERRORS:
                results[i] = _storage_down()
        return results

    async def _one_by_one(
        self, checked: dict[int, _Rows], refusal: Exception, poison: dict[int, str]
    ) -> list[Counts | BaseException]:
        """PostgreSQL refused the group's data: stores each delivery on its own, so that only
        the one it refuses is dead-lettered (added to ``poison``)."""
        if len(checked) == 1:
            poison.update(dict.fromkeys(checked, _reason(refusal)))
            return [(0, 0, 0, 0)]
        log.warning("a webhook group was refused; storing its deliveries one by one")
        results: list[Counts | BaseException] = []
        for i, rows in checked.items():
            try:
                results.append((await self._commit([rows]))[0])
            except Exception as exc:
                if _refused(exc):
                    poison[i] = _reason(exc)
                    results.append((0, 0, 0, 0))
                else:
                    results.append(_storage_down() if isinstance(exc, STORAGE_ERRORS) else exc)
        return results

    async def _commit(self, deliveries: list[_Rows]) -> list[Counts]:
        """One statement, so one round trip and one atomic commit: look up the live realms,
        insert the batch for them (duplicates skipped), notify the workers."""
        pool = await self._get_pool()
        records = await pool.fetch(_STORE_SQL, *_store_args(deliveries))
        self.commits += 1
        return _counts(deliveries, records)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> Counts:
        """Stores the body exactly as received, dead-lettered with the reason; the same body
        again (Intuit's retry) is recognised and not stored twice."""
        pool = await self._get_pool()
        realm = _safe_text(_raw_realm(delivery), 64)
        why = _safe_text(f"not stored as parsed: {reason}")
        inserted = await pool.fetchval(
            _DEAD_LETTER_SQL, raw_event_id(delivery.body), realm, why, delivery.body
        )
        log.warning(
            "signed webhook kept as a raw dead letter",
            extra={"realm_id": realm, "reason": why, "bytes": len(delivery.body)},
        )
        return (0, 1, 0, 0) if inserted is None else (0, 0, 0, 1)

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=self._max_in_flight, command_timeout=10
            )
        return self._pool


async def ingest(
    writer: InboxWriter, body: bytes, signature: str, verifier_tokens: Iterable[str]
) -> IngestResult:
    """Verifies, parses and stores one delivery. A correctly signed body that cannot be
    stored as parsed events is kept as a raw dead letter and acknowledged all the same
    (refusing it would hold every later event of the app behind it at Intuit)."""
    verify_signature(body, signature, verifier_tokens)
    try:
        events = parse_payload(body)
    except MalformedWebhook as exc:
        return IngestResult(*await writer.write(Delivery(body, [], poison=exc.message)))
    relevant = [e for e in events if e.relevant]
    ignored = len(events) - len(relevant)
    if not relevant:
        return IngestResult(0, 0, ignored)
    stored, duplicates, dropped, dead = await writer.write(Delivery(body, relevant))
    return IngestResult(stored, duplicates, dropped + ignored, dead)


# A JSON ``\u0000`` escape: preceded by an even number of backslashes (an odd number means
# the backslash itself is escaped and the six characters are text).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def _jsonb_text(raw: dict[str, Any]) -> str:
    """The event as stored: PostgreSQL's jsonb refuses the NUL character (``\\u0000``), so
    it is kept as the six literal characters instead; everything else is byte for byte."""
    text_ = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    return _NUL_ESCAPE.sub(r"\1\\\\u0000", text_)


_STORE_SQL = """
WITH batch AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
        $7::timestamptz[], $8::jsonb[]
    ) AS b(event_id, dedupe_key, realm_id, entity, entity_id, operation, occurred_at, payload)
),
live AS (
    SELECT realm_id, tenant_id FROM integration.connections
    WHERE realm_id IN (SELECT DISTINCT realm_id FROM batch)
      AND state IN ('connected', 'needs_reauthorization')
),
stored AS (
    INSERT INTO integration.webhook_inbox
        (event_id, dedupe_key, tenant_id, realm_id, entity, entity_id, operation, occurred_at,
         status, attempts, last_error, payload)
    SELECT b.event_id, b.dedupe_key, l.tenant_id, b.realm_id, b.entity, b.entity_id,
           b.operation, b.occurred_at, 'pending', 0, '', b.payload
    FROM batch b JOIN live l USING (realm_id)
    ON CONFLICT DO NOTHING
    RETURNING event_id, realm_id
),
notified AS (
    SELECT pg_notify($9, realm_id) FROM (SELECT DISTINCT realm_id FROM stored) AS r
)
SELECT 'stored' AS kind, event_id AS value FROM stored
UNION ALL SELECT 'live', realm_id FROM live
UNION ALL SELECT 'notified', '' FROM notified
"""

_DEAD_LETTER_SQL = """
INSERT INTO integration.webhook_inbox
    (event_id, dedupe_key, tenant_id, realm_id, entity, entity_id, operation, occurred_at,
     status, attempts, last_error, processed_at, payload, raw_body)
VALUES (
    $1, $1,
    COALESCE(
        (SELECT tenant_id FROM integration.connections
         WHERE realm_id = $2 AND state IN ('connected', 'needs_reauthorization') LIMIT 1),
        ''
    ),
    $2, '', '', '', now(), 'dead', 0, $3, now(), '{}'::jsonb, $4
)
ON CONFLICT DO NOTHING
RETURNING id
"""


@dataclass(frozen=True)
class InboxStats:
    backlog: int
    oldest_pending_age: timedelta | None
    dead_letters: int
    last_received: datetime | None


async def stats(session: AsyncSession, tenant_id: str) -> InboxStats:
    pending, oldest, dead, last = (
        await session.execute(
            select(
                func.count().filter(InboxEvent.status == "pending"),
                func.min(InboxEvent.received_at).filter(InboxEvent.status == "pending"),
                func.count().filter(InboxEvent.status == "dead"),
                func.max(InboxEvent.received_at),
            ).where(InboxEvent.tenant_id == tenant_id)
        )
    ).one()
    age = datetime.now(UTC) - oldest if oldest is not None else None
    return InboxStats(int(pending), age, int(dead), last)


async def replay_dead_letters(
    session: AsyncSession,
    *,
    tenant_id: str | None,
    realm_id: str | None,
    event_ids: list[str],
) -> list[int]:
    """Puts the dead letters in scope back in the queue; a raw one (a body that could not be
    stored as parsed) is parsed again and its events stored, or stays dead with the reason."""
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
    replayed += await _replay_raw(session, scope)
    if replayed:
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": NOTIFY_CHANNEL})
    return replayed


async def _replay_raw(session: AsyncSession, scope: list[Any]) -> list[int]:
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
            checked = _rows([e for e in parse_payload(body) if e.relevant])
            async with session.begin_nested():
                records = await driver.fetch(_STORE_SQL, *_store_args([checked]))
        except (MalformedWebhook, Unstorable) as exc:
            reason = str(exc)
        except Exception as exc:
            if not _refused(exc):
                raise
            reason = _reason(exc)
        else:
            stored, duplicates, dropped, _ = _counts([checked], records)[0]
            row.status = "done"
            row.processed_at = datetime.now(UTC)
            row.last_error = (
                f"replayed: {stored} stored, {duplicates} duplicates, {dropped} dropped"
            )
            replayed.append(row.id)
            continue
        row.last_error = _safe_text(f"replay failed, still not stored as parsed: {reason}")
    return replayed


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
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._apply = apply
        self._batch = batch_size
        self._max_attempts = max_attempts
        self._base = backoff_base_s
        self._cap = backoff_cap_s
        self._poll = poll_interval_s
        self._wake = asyncio.Event()
        self.processed = 0
        self.dead_lettered = 0
        self.on_processed: Callable[[InboxEvent, float], None] | None = None

    # -- the loop ------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop), name="inbox-listen")
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
        """Processes every realm that has due events; returns how many events it settled."""
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
        settled = 0
        for realm_id in realms:
            settled += await self.process_realm(realm_id)
        return settled

    async def process_realm(self, realm_id: str) -> int:
        async with AdvisoryLock(self._engine, f"qbo-inbox:{realm_id}") as lock:
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
            await self._apply(connection.tenant_id, realm_id, _by_entity(groups))
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
                    await self._apply(connection.tenant_id, realm_id, _by_entity({key: group}))
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
