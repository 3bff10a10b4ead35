"""Engine and session factory. Created in each process's ``main()`` and passed down."""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    echo: bool = False,
    server_settings: Mapping[str, str] | None = None,
) -> AsyncEngine:
    """``server_settings`` override :data:`SERVER_SETTINGS` (tests lower the timeouts)."""
    if not url.startswith("postgresql+asyncpg://"):
        raise ValueError("AICOLLECT_DATABASE_URL must start with postgresql+asyncpg://")
    settings = {**SERVER_SETTINGS, **(server_settings or {})}
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # Not SQLAlchemy's pre-ping: with asyncpg it is three round trips (BEGIN, a query,
        # ROLLBACK) on every checkout, more than many of our transactions themselves.
        # ``_drop_closed`` asks the driver instead, which has already read the server's
        # goodbye (a restart, a terminated backend) off the socket.
        pool_pre_ping=False,
        pool_recycle=1800,
        echo=echo,
        connect_args={"server_settings": settings},
    )
    _settings_of[engine.sync_engine] = settings
    event.listen(engine.sync_engine, "checkout", _drop_closed)
    return engine


def _drop_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """A pooled connection the server has closed is replaced before anyone uses it (the
    pool retries the checkout with a new one), as a pre-ping would, without a round trip."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this pooled connection")


# Safety nets against a transaction abandoned by a crashed or cancelled caller: PostgreSQL
# ends a session that sits idle inside a transaction, so its row locks cannot block the
# rest of the system forever, and a lock wait fails (and is retried) instead of hanging.
# Long-held advisory locks never sit in a transaction (``aicollect.db.locks``), so this
# timeout only ever ends real transactions.
SERVER_SETTINGS = {
    "idle_in_transaction_session_timeout": "30000",  # ms
    "lock_timeout": "20000",  # ms
}

_settings_of: weakref.WeakKeyDictionary[Engine, dict[str, str]] = weakref.WeakKeyDictionary()


def server_settings(engine: AsyncEngine) -> dict[str, str]:
    """The session settings ``engine``'s connections get (for connections made beside it)."""
    return dict(_settings_of.get(engine.sync_engine, SERVER_SETTINGS))


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
