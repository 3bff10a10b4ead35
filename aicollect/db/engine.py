"""Engine and session factory. Created in each process's ``main()`` and passed down."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    if not url.startswith("postgresql+asyncpg://"):
        raise ValueError("AICOLLECT_DATABASE_URL must start with postgresql+asyncpg://")
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        echo=echo,
        connect_args={"server_settings": SERVER_SETTINGS},
    )


# Safety nets against a transaction abandoned by a crashed or cancelled caller: PostgreSQL
# ends a session that sits idle inside a transaction, so its row locks cannot block the
# rest of the system forever, and a lock wait fails (and is retried) instead of hanging.
SERVER_SETTINGS = {
    "idle_in_transaction_session_timeout": "30000",  # ms
    "lock_timeout": "20000",  # ms
}


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
