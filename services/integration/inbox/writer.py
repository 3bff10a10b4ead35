"""The inbox writer: stores webhook deliveries durably, committing concurrent ones together."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from sqlalchemy.engine import make_url

from services.integration.inbox.store import (
    DEAD_LETTER_SQL,
    STORAGE_ERRORS,
    STORE_SQL,
    Counts,
    Delivery,
    Rows,
    Unstorable,
    checked_rows,
    counts_of,
    raw_event_id,
    raw_realm,
    reason_of,
    refused,
    safe_text,
    storage_down,
    store_args,
)

log = logging.getLogger(__name__)


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
            results = [storage_down()] * len(batch)
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
        checked: dict[int, Rows] = {}
        for i, delivery in enumerate(deliveries):
            if i not in poison:
                try:
                    checked[i] = checked_rows(delivery.events)
                except Unstorable as exc:
                    poison[i] = str(exc)
        if checked:
            counted: list[Counts | BaseException]
            try:
                counted = list(await self._commit(list(checked.values())))
            except Exception as exc:
                if not refused(exc):
                    raise  # an outage: every delivery of the group is answered 503
                counted = await self._one_by_one(checked, exc, poison)
            for i, counts in zip(checked, counted, strict=True):
                results[i] = counts
        for i, reason in poison.items():
            try:
                results[i] = await self._dead_letter(deliveries[i], reason)
            except STORAGE_ERRORS:
                results[i] = storage_down()
        return results

    async def _one_by_one(
        self, checked: dict[int, Rows], refusal: Exception, poison: dict[int, str]
    ) -> list[Counts | BaseException]:
        """PostgreSQL refused the group's data: stores each delivery on its own, so that only
        the one it refuses is dead-lettered (added to ``poison``)."""
        if len(checked) == 1:
            poison.update(dict.fromkeys(checked, reason_of(refusal)))
            return [(0, 0, 0, 0)]
        log.warning("a webhook group was refused; storing its deliveries one by one")
        results: list[Counts | BaseException] = []
        for i, rows in checked.items():
            try:
                results.append((await self._commit([rows]))[0])
            except Exception as exc:
                if refused(exc):
                    poison[i] = reason_of(exc)
                    results.append((0, 0, 0, 0))
                else:
                    results.append(storage_down() if isinstance(exc, STORAGE_ERRORS) else exc)
        return results

    async def _commit(self, deliveries: list[Rows]) -> list[Counts]:
        """One statement, so one round trip and one atomic commit: look up the live realms,
        insert the batch for them (duplicates skipped), notify the workers."""
        pool = await self._get_pool()
        records = await pool.fetch(STORE_SQL, *store_args(deliveries))
        self.commits += 1
        return counts_of(deliveries, records)

    async def _dead_letter(self, delivery: Delivery, reason: str) -> Counts:
        """Stores the body exactly as received, dead-lettered with the reason; the same body
        again (Intuit's retry) is recognised and not stored twice."""
        pool = await self._get_pool()
        realm = safe_text(raw_realm(delivery), 64)
        why = safe_text(f"not stored as parsed: {reason}")
        inserted = await pool.fetchval(
            DEAD_LETTER_SQL,
            raw_event_id(delivery.body),
            realm,
            why,
            delivery.body,
            delivery.provider,
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
