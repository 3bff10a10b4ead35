"""Reading the outreach-event outbox as a resumable stream.

The cursor is the outbox id, made opaque. Ids become visible in commit order (see
``journal``), so "everything after id N" read at any moment is a prefix-closed set: a
consumer that resumes from the last cursor it processed misses nothing and sees nothing
twice. New events are announced with PostgreSQL NOTIFY; a short poll is the fallback.

An idle stream holds no database connection: one listener connection per process
(``OutboxNotifier``) hears every NOTIFY and wakes the streams, and each stream borrows a
pooled connection only for the moment of a read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections.abc import AsyncGenerator
from typing import Any

import asyncpg
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.errors import FailedPrecondition, InvalidArgument
from services.matcher.journal import OUTBOX_CHANNEL
from services.matcher.metrics import StreamPositions
from services.matcher.models import OutboxRetention, OutreachEventRow
from services.matcher.retention import outbox_purged_through

_PREFIX = "outreach:"
_CURSOR = re.compile(r"outreach:(0|[1-9][0-9]{0,18})")
BATCH = 500


def encode_cursor(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, ValueError):
        raw = ""
    match = _CURSOR.fullmatch(raw)
    if match is None:
        raise _bad_cursor()
    return int(match.group(1))


def _expired_cursor(purged: int) -> FailedPrecondition:
    return FailedPrecondition(
        "events after this cursor were purged by retention; resynchronise placements"
        " (ListPlacements) and open the stream with an empty cursor",
        reason="CURSOR_EXPIRED",
        metadata={"purged_through": encode_cursor(purged)},
    )


def _bad_cursor() -> InvalidArgument:
    return InvalidArgument(
        "cursor was not issued by this service; pass an OutreachEvent.cursor or empty",
        field="cursor",
        reason="CURSOR_INVALID",
    )


async def _read(
    engine: AsyncEngine, after: int, tenant_id: str, limit: int
) -> tuple[list[OutreachEventRow], int | None]:
    """One read on a connection borrowed from the pool for just this read: the rows after
    ``after``, and the newest outbox id (how far behind the stream is). Refuses a position
    that retention has purged past: the rows it would skip are gone."""
    table = OutreachEventRow.__table__
    stmt = select(table).where(table.c.id > after).order_by(table.c.id).limit(limit)
    newest = select(func.max(table.c.id))
    if tenant_id:
        stmt = stmt.where(table.c.tenant_id == tenant_id)
        newest = newest.where(table.c.tenant_id == tenant_id)
    # One round trip for both positions: how far retention purged, and the newest event.
    positions = select(
        select(OutboxRetention.purged_through).scalar_subquery(), newest.scalar_subquery()
    )
    async with engine.connect() as conn:
        purged, newest_id = (await conn.execute(positions)).one()
        if after < (purged or 0):
            raise _expired_cursor(purged)
        rows: list[Any] = list((await conn.execute(stmt)).all())
    return rows, newest_id


async def _read_shielded(
    engine: AsyncEngine, after: int, tenant_id: str, limit: int
) -> tuple[list[OutreachEventRow], int | None]:
    # A consumer hanging up cancels the stream at any await. Cancelled in the middle of the
    # pool opening a connection, the driver's connection would be lost outside the pool, so
    # the read itself always runs to its end and gives its connection back.
    return await asyncio.shield(_read(engine, after, tenant_id, limit))


async def _start(engine: AsyncEngine, after: int) -> int:
    """Where a stream starts: an empty cursor at what retention kept, a cursor where it
    points (one this service never issued is refused)."""
    async with engine.connect() as conn:
        if not after:
            return await outbox_purged_through(conn)
        newest = (await conn.execute(select(func.max(OutreachEventRow.id)))).scalar()
    if newest is None or after > newest:
        raise _bad_cursor()
    return after


class OutboxNotifier:
    """One LISTEN connection per process, shared by every stream.

    Started by the first subscriber and closed when the last one leaves, so a process with
    no consumers holds no listener. If the listener connection fails, every subscriber is
    woken (they re-read, and keep polling at their interval) and the next subscription or
    wake-up reconnects.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._subscribers: set[asyncio.Event] = set()
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    def _wake_all(self, *_: object) -> None:
        for event in self._subscribers:
            event.set()

    async def _ensure_listening(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            conn: asyncpg.Connection = await asyncpg.connect(self._dsn, timeout=10)
            try:
                conn.add_termination_listener(self._on_lost)
                await conn.add_listener(OUTBOX_CHANNEL, self._wake_all)
            except BaseException:  # cancelled or failed half-way: never leak the connection
                conn.terminate()
                raise
            self._conn = conn

    def _on_lost(self, *_: object) -> None:
        self._conn = None
        self._wake_all()

    def subscribe(self) -> asyncio.Event:
        """A new subscriber's wake-up event; pair it with ``unsubscribe`` in a finally."""
        event = asyncio.Event()
        self._subscribers.add(event)
        return event

    async def listen(self) -> None:
        """Makes sure the shared listener runs. Without it the streams still poll, and the
        next call retries it."""
        if self._subscribers and (self._conn is None or self._conn.is_closed()):
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                # Shielded like the reads: a connect cut short by a hang-up would leak.
                await asyncio.shield(self._ensure_listening())

    async def unsubscribe(self, event: asyncio.Event) -> None:
        self._subscribers.discard(event)
        async with self._lock:
            if self._subscribers or self._conn is None:
                return
            conn, self._conn = self._conn, None
        with contextlib.suppress(Exception):
            conn.terminate()  # immediate: nothing is pending on a bare listener


def notifier_for(engine: AsyncEngine) -> OutboxNotifier:
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return OutboxNotifier(dsn)


async def stream_events(
    engine: AsyncEngine,
    notifier: OutboxNotifier,
    cursor: str,
    tenant_id: str,
    *,
    poll_interval: float,
    positions: StreamPositions | None = None,
) -> AsyncGenerator[Any, None]:
    """Yields outbox rows after ``cursor`` in id order, then new ones as they commit, until
    the consumer goes away (the caller's task is cancelled). Between reads it holds no
    database connection."""
    after = await asyncio.shield(_start(engine, decode_cursor(cursor)))
    wake = notifier.subscribe()
    position = positions.open() if positions is not None else 0
    try:
        await notifier.listen()
        while True:
            wake.clear()
            rows, newest = await _read_shielded(engine, after, tenant_id, BATCH)
            if positions is not None:
                positions.update(position, after, newest)
            for row in rows:
                yield row
                after = row.id
                if positions is not None:
                    positions.update(position, after, newest)
            if len(rows) == BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), poll_interval)
            await notifier.listen()
    finally:
        if positions is not None:
            positions.close(position)
        await asyncio.shield(notifier.unsubscribe(wake))
