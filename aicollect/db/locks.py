"""PostgreSQL advisory locks held for as long as a job runs, never inside a transaction.

The one way this code base takes an advisory lock that outlives a statement (the per-realm
sync locks, the token-refresh lock, the inbox's per-realm lock). A lock is a session-level
``pg_advisory_lock`` / ``pg_try_advisory_lock`` on a connection of its own, opened beside
the engine's pool with the same session settings and never inside a transaction, so:

* ``idle_in_transaction_session_timeout`` (a safety net for real transactions) cannot end
  it, however long the job or an HTTP call to Intuit takes, and an idle lock holder keeps
  no snapshot or row version alive;
* the lock is released when the block exits, normally, by an error or by cancellation:
  ``pg_advisory_unlock`` and a clean close, or, if that cannot run, the connection is cut
  (PostgreSQL drops a session's locks when the session ends);
* a lock connection that dies (server restart, ``pg_terminate_backend``, a network
  failure) means the lock is gone. The holder learns it at once from the connection's
  termination callback, or within ``heartbeat_s`` from a ``SELECT 1`` that fails or does
  not answer: ``held`` turns False, ``lost`` is set and ``check()`` raises
  :class:`AdvisoryLockLost`. With ``cancel_on_loss`` the task holding the lock is also
  cancelled and the block raises :class:`AdvisoryLockLost`, so a long job stops instead of
  running on beside the replica that takes the lock next.

``application_name`` of the lock connection is ``aicollect-lock <key>``, so
``pg_stat_activity`` shows which locks are held and by whom (keys hold no secrets).

A holder that takes a lock over and over (the inbox worker, once per realm and round) can
keep its released lock connections for the next lock (:class:`LockConnections`): opening a
PostgreSQL connection costs the server a process start, about 10 ms of CPU, where reusing
one costs nothing beyond the lock's own statements. A kept connection holds no lock, is
named ``aicollect-lock`` alone, and is closed with its owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from aicollect.db.engine import server_settings
from aicollect.errors import Unavailable

log = logging.getLogger(__name__)

HEARTBEAT_S = 5.0
CONNECT_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 5.0
APPLICATION_NAME = "aicollect-lock"

_CONNECTION_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)


class AdvisoryLockLost(Unavailable):
    """The lock's connection closed while the lock was held; another process may hold it."""

    default_reason = "LOCK_LOST"


class AdvisoryLockTimeout(Unavailable):
    """Waiting for the lock took longer than the session's ``lock_timeout``."""

    default_reason = "LOCK_TIMEOUT"


class LockConnections:
    """Released lock connections kept for the next :class:`AdvisoryLock` of one owner, at
    most ``keep`` of them; :meth:`close` ends them (the owner calls it when it stops)."""

    def __init__(self, keep: int = 2) -> None:
        self._idle: list[asyncpg.Connection] = []
        self._keep = keep

    def take(self) -> asyncpg.Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        return None

    async def give_back(self, conn: asyncpg.Connection) -> None:
        if len(self._idle) < self._keep and not conn.is_closed():
            self._idle.append(conn)
        else:
            await _close(conn)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close(conn)


class AdvisoryLock:
    """``async with AdvisoryLock(engine, key) as lock:`` then ``lock.held``.

    ``key`` is one text (``pg_advisory_lock(hashtext(a))``) or two
    (``pg_advisory_lock(hashtext(a), hashtext(b))``): the same lock as the equally keyed
    transaction-level or session-level calls elsewhere. ``wait=False`` tries once
    (``held`` is False when another session has it); ``wait=True`` waits, up to the
    session's ``lock_timeout`` (then :class:`AdvisoryLockTimeout`). ``connections``: where
    the lock connection comes from and goes back to (else one is opened and closed).
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *key: str,
        wait: bool = False,
        cancel_on_loss: bool = False,
        heartbeat_s: float = HEARTBEAT_S,
        connections: LockConnections | None = None,
    ) -> None:
        if len(key) not in (1, 2):
            raise ValueError("an advisory lock key is one or two texts")
        self.name = ":".join(key)
        self._application_name = f"{APPLICATION_NAME} {self.name}"[:63]
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self._engine = engine
        self._key = key
        self._args = ", ".join(f"hashtext(${i + 1})" for i in range(len(key)))
        self._wait = wait
        self._cancel_on_loss = cancel_on_loss
        self._heartbeat_s = heartbeat_s
        self._connections = connections
        self._conn: asyncpg.Connection | None = None
        self._acquired = False
        self._releasing = False
        self._stop = asyncio.Event()
        self._beat: asyncio.Task[None] | None = None
        self._holder: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._cancelled_holder = False

    @property
    def held(self) -> bool:
        """True from acquisition until release, unless the lock's connection was lost."""
        return self._acquired and not self._releasing and not self.lost.is_set()

    def check(self) -> None:
        """Raises :class:`AdvisoryLockLost` if the lock was lost while held."""
        if self.lost.is_set():
            raise self._lost_error()

    def _lost_error(self) -> AdvisoryLockLost:
        return AdvisoryLockLost(
            f"lost the lock '{self.name}' ({self.lost_reason}); the work is retried",
            retry_after_seconds=5,
        )

    async def __aenter__(self) -> AdvisoryLock:
        if self._connections is not None:
            kept = self._connections.take()
            if kept is not None:
                try:
                    return await self._acquire(kept)
                except AdvisoryLockTimeout:
                    raise
                except Exception:  # it died while kept (asyncpg may not know yet): cut it
                    kept.terminate()  # and take the lock on a new one below
        return await self._acquire(await self._connect())

    async def _connect(self) -> asyncpg.Connection:
        url = self._engine.url.set(drivername="postgresql")
        # A connection that may be kept is named by the statements that take and release.
        name = APPLICATION_NAME if self._connections is not None else self._application_name
        settings = {**server_settings(self._engine), "application_name": name}
        try:
            conn: asyncpg.Connection = await asyncpg.connect(
                url.render_as_string(hide_password=False),
                timeout=CONNECT_TIMEOUT_S,
                server_settings=settings,
            )
        except _CONNECTION_ERRORS as exc:
            raise Unavailable(
                f"the database is unavailable (taking the lock '{self.name}'); retry shortly",
                retry_after_seconds=5,
            ) from exc
        return conn

    async def _acquire(self, conn: asyncpg.Connection) -> AdvisoryLock:
        """Takes (or tries) the lock on ``conn``; a connection that may be kept is renamed
        in the same statement, after the lock while it holds it."""
        named = len(self._key) + 1
        reused = self._connections is not None
        try:
            if self._wait:
                if reused:
                    await conn.execute(
                        f"SELECT pg_advisory_lock({self._args}),"
                        f" set_config('application_name', ${named}, false)",
                        *self._key,
                        self._application_name,
                    )
                else:
                    await conn.execute(f"SELECT pg_advisory_lock({self._args})", *self._key)
                got = True
            elif reused:
                got = await conn.fetchval(
                    f"SELECT got, set_config('application_name',"
                    f" CASE WHEN got THEN ${named} ELSE '{APPLICATION_NAME}' END, false)"
                    f" FROM pg_try_advisory_lock({self._args}) AS got",
                    *self._key,
                    self._application_name,
                )
            else:
                got = await conn.fetchval(f"SELECT pg_try_advisory_lock({self._args})", *self._key)
        except asyncpg.LockNotAvailableError:
            conn.terminate()
            raise AdvisoryLockTimeout(
                f"timed out waiting for the lock '{self.name}'; retry shortly",
                retry_after_seconds=5,
            ) from None
        except _CONNECTION_ERRORS:
            conn.terminate()  # failed while (maybe) acquiring: drop everything
            raise
        except BaseException:
            conn.terminate()  # cancelled while (maybe) acquiring: drop everything
            raise
        if not got:
            await self._done_with(conn)
            return self
        self._conn = conn
        self._acquired = True
        self._holder = asyncio.current_task()
        if self._holder is not None:
            self._cancelling = self._holder.cancelling()
        conn.add_termination_listener(self._on_terminated)
        self._beat = asyncio.create_task(self._heartbeat(conn), name=f"lock:{self.name}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._acquired:
            return
        self._releasing = True
        try:
            await self._release()
        except asyncio.CancelledError:
            if self._our_cancel():
                raise self._lost_error() from None
            raise
        if exc_type is asyncio.CancelledError and self._our_cancel():
            raise self._lost_error() from None

    def _our_cancel(self) -> bool:
        """True when the cancellation under way is the one this lock asked for on loss."""
        if not self._cancelled_holder or self._holder is None:
            return False
        self._cancelled_holder = False
        return self._holder.uncancel() <= self._cancelling

    async def _release(self) -> None:
        conn = self._conn
        assert conn is not None
        self._stop.set()
        kept = False
        try:
            if self._beat is not None:
                await self._beat  # at most one SELECT 1 in flight
            if not self.lost.is_set():
                try:
                    if self._connections is None:
                        await conn.execute(f"SELECT pg_advisory_unlock({self._args})", *self._key)
                    else:  # kept: named as holding nothing, in the same statement
                        await conn.execute(
                            f"SELECT pg_advisory_unlock({self._args}),"
                            f" set_config('application_name', '{APPLICATION_NAME}', false)",
                            *self._key,
                        )
                except _CONNECTION_ERRORS as exc:
                    # Cutting the connection below releases the lock all the same.
                    log.warning(
                        "could not unlock an advisory lock; closing its connection",
                        extra={"lock": self.name, "error": type(exc).__name__},
                    )
                else:
                    conn.remove_termination_listener(self._on_terminated)
                    kept = self._connections is not None
                    await self._done_with(conn)
        finally:
            if self._beat is not None and not self._beat.done():
                self._beat.cancel()
            if not kept and not conn.is_closed():
                conn.terminate()

    async def _done_with(self, conn: asyncpg.Connection) -> None:
        """A connection that holds no lock: kept for the next one, or closed."""
        if self._connections is not None:
            await self._connections.give_back(conn)
        else:
            await _close(conn)

    def _on_terminated(self, _conn: object) -> None:
        self._on_lost("its database connection closed")

    def _on_lost(self, reason: str) -> None:
        if self._releasing or self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost.set()
        log.warning("advisory lock lost", extra={"lock": self.name, "why": reason})
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        if self._cancel_on_loss and self._holder is not None and not self._holder.done():
            self._cancelled_holder = True
            self._holder.cancel(f"lost the lock '{self.name}'")

    async def _heartbeat(self, conn: asyncpg.Connection) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._heartbeat_s)
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self._heartbeat_s)
            except _CONNECTION_ERRORS as exc:
                self._on_lost(f"its database connection stopped answering ({type(exc).__name__})")
                return


async def _close(conn: asyncpg.Connection) -> None:
    """Closes cleanly; cuts the connection if that fails or is cancelled."""
    try:
        await conn.close(timeout=CLOSE_TIMEOUT_S)
    except _CONNECTION_ERRORS:
        conn.terminate()
    except BaseException:
        conn.terminate()
        raise
