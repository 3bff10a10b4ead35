"""Reading the outreach-event outbox as a resumable stream.

The cursor is the outbox id, made opaque. Ids become visible in commit order (see
``journal``), so "everything after id N" read at any moment is a prefix-closed set: a
consumer that resumes from the last cursor it processed misses nothing and sees nothing
twice. New events are announced with PostgreSQL NOTIFY; a short poll is the fallback.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import re
from collections.abc import AsyncGenerator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aicollect.errors import InvalidArgument
from services.matcher.journal import OUTBOX_CHANNEL
from services.matcher.models import OutreachEventRow

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


def _bad_cursor() -> InvalidArgument:
    return InvalidArgument(
        "cursor was not issued by this service; pass an OutreachEvent.cursor or empty",
        field="cursor",
        reason="CURSOR_INVALID",
    )


async def _read(
    conn: AsyncConnection, after: int, tenant_id: str, limit: int
) -> list[OutreachEventRow]:
    table = OutreachEventRow.__table__
    stmt = select(table).where(table.c.id > after).order_by(table.c.id).limit(limit)
    if tenant_id:
        stmt = stmt.where(table.c.tenant_id == tenant_id)
    rows: list[Any] = list((await conn.execute(stmt)).all())
    await conn.commit()  # never sit idle in a transaction between reads
    return rows


async def stream_events(
    engine: AsyncEngine, cursor: str, tenant_id: str, *, poll_interval: float
) -> AsyncGenerator[Any, None]:
    """Yields outbox rows after ``cursor`` in id order, then new ones as they commit, until
    the consumer goes away (the caller's task is cancelled)."""
    after = decode_cursor(cursor)
    async with engine.connect() as conn:
        if after:
            newest = (await conn.execute(select(func.max(OutreachEventRow.id)))).scalar()
            await conn.commit()
            if newest is None or after > newest:
                raise _bad_cursor()
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        wake = asyncio.Event()

        def on_notify(*_: object) -> None:
            wake.set()

        await driver.add_listener(OUTBOX_CHANNEL, on_notify)
        try:
            while True:
                wake.clear()
                rows = await _read(conn, after, tenant_id, BATCH)
                for row in rows:
                    yield row
                    after = row.id
                if len(rows) == BATCH:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll_interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(driver.remove_listener(OUTBOX_CHANNEL, on_notify))
