"""Grants that cover several companies (Xero): stored once, refreshed once.

A Xero token belongs to a Xero user and reaches every organisation that user connected to
our app; rotating it for one organisation rotates it for all. So such a grant is one row
(``models.Grant``, one per platform and user), the connections that use it point at it
(``Connection.grant_id``), and its refresh runs under one lock keyed by the grant --
never by the organisation -- in this process (an asyncio lock) and across processes (a
PostgreSQL advisory lock). The rotated refresh token is stored (compare-and-set on
``token_generation``) before anyone uses the new access token; on ``invalid_grant`` the
grant is re-read once (another process may have rotated it) before every connection
using it is marked as needing re-authorization.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.crypto import DecryptError, TokenCipher
from aicollect.db.locks import AdvisoryLock
from aicollect.errors import Unavailable
from aicollect.metrics import IntegrationMetrics
from services.integration.models import AuditEvent, Connection, Grant
from services.integration.providers import PlatformRegistry
from services.integration.providers.base import (
    InvalidGrant,
    OAuthError,
    OAuthUnavailable,
    TokenSet,
)
from services.integration.states import CONNECTED, LIVE_STATES, NEEDS_REAUTHORIZATION
from services.integration.tokens import (
    REFRESH_MARGIN,
    ConnectionNotLive,
    ReauthorizationRequired,
    unreadable,
)

log = logging.getLogger(__name__)


def grant_identity(grant_id: str, kind: str) -> str:
    """Associated data binding a sealed token to its grant and role."""
    return f"integration.grants:{grant_id}:{kind}"


def reauth_detail(display_name: str) -> str:
    return (
        f"{display_name} rejected our authorization (the app was disconnected in "
        f"{display_name}, or the authorization expired). Reconnect {display_name} to resume "
        "syncing."
    )


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def _seal(cipher: TokenCipher, grant: Grant, tokens: TokenSet) -> None:
    grant.access_token = cipher.seal(tokens.access_token, grant_identity(grant.grant_id, "access"))
    grant.refresh_token = cipher.seal(
        tokens.refresh_token, grant_identity(grant.grant_id, "refresh")
    )
    grant.access_expires_at = _dt(tokens.access_expires_at)
    grant.refresh_expires_at = _dt(tokens.refresh_expires_at)
    grant.token_generation = (grant.token_generation or 0) + 1


async def store_grant(
    session: AsyncSession, cipher: TokenCipher, provider: str, tokens: TokenSet
) -> str:
    """Stores a new consent's tokens as the grant of its user (one per platform and user):
    the newer tokens replace what was stored (the older ones are not revoked: at Xero that
    would disconnect every organisation of the user). Returns the grant id."""
    if not tokens.subject:
        raise ValueError("a shared grant needs the platform's user (TokenSet.subject)")
    grant = (
        await session.execute(
            select(Grant)
            .where(Grant.provider == provider, Grant.subject == tokens.subject)
            .with_for_update()
        )
    ).scalar_one_or_none()
    if grant is None:
        grant = Grant(
            grant_id=uuid.uuid4().hex, provider=provider, subject=tokens.subject, token_generation=0
        )
        session.add(grant)
    _seal(cipher, grant, tokens)
    await session.flush()
    return grant.grant_id


async def grant_users(session: AsyncSession, grant_id: str, *, besides: str = "") -> int:
    """How many live connections (other than tenant ``besides``) use the grant."""
    count = await session.scalar(
        select(func.count())
        .select_from(Connection)
        .where(
            Connection.grant_id == grant_id,
            Connection.state.in_(LIVE_STATES),
            Connection.tenant_id != besides,
        )
    )
    return int(count or 0)


def open_refresh_token(cipher: TokenCipher, grant: Grant) -> str | None:
    """The grant's refresh token in clear (None if there is none or it cannot be opened)."""
    if grant.refresh_token is None:
        return None
    try:
        return cipher.open(grant.refresh_token, grant_identity(grant.grant_id, "refresh"))
    except DecryptError:
        return None


async def forget_grant(session: AsyncSession, grant_id: str) -> None:
    """Wipes a grant no connection uses any more (its refresh token was queued for
    revocation in the same transaction)."""
    grant = await session.get(Grant, grant_id, with_for_update=True)
    if grant is not None:
        await session.delete(grant)


class GrantTokens:
    """Valid access tokens for connections whose grant is shared; the only code that
    refreshes such grants."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        cipher: TokenCipher,
        platforms: PlatformRegistry,
        metrics: IntegrationMetrics,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._cipher = cipher
        self._platforms = platforms
        self._metrics = metrics
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.refresh_count = 0

    async def _grant(self, grant_id: str) -> Grant | None:
        async with self._sessions() as session:
            return await session.get(Grant, grant_id)

    def _usable(self, grant: Grant, now: datetime) -> tuple[str, int] | None:
        if (
            grant.access_token is None
            or grant.access_expires_at is None
            or grant.access_expires_at - REFRESH_MARGIN <= now
        ):
            return None
        try:
            token = self._cipher.open(grant.access_token, grant_identity(grant.grant_id, "access"))
        except DecryptError:
            raise unreadable(self._cipher, grant.access_token, "the stored tokens") from None
        return token, grant.token_generation

    async def access_token(self, grant_id: str, provider: str) -> tuple[str, int]:
        """(access token, generation) valid for at least the margin; refreshes when needed."""
        grant = await self._grant(grant_id)
        if grant is not None:
            usable = self._usable(grant, datetime.now(UTC))
            if usable is not None:
                return usable
        seen = grant.token_generation if grant is not None else -1
        return await self.refresh(grant_id, provider, seen_generation=seen)

    async def refresh(
        self, grant_id: str, provider: str, *, seen_generation: int, force: bool = False
    ) -> tuple[str, int]:
        async with (
            self._locks[grant_id],
            AdvisoryLock(self._engine, f"grant-refresh:{grant_id}", wait=True) as lock,
        ):
            grant = await self._grant(grant_id)
            if grant is None or grant.refresh_token is None:
                raise ConnectionNotLive("the connection's authorization is gone")
            if grant.token_generation != seen_generation or not force:
                usable = self._usable(grant, datetime.now(UTC))
                if usable is not None:
                    return usable  # refreshed meanwhile (here or in another process)
            platform = self._platforms.platform_for(provider)
            for attempt in (1, 2):
                lock.check()  # never rotate the token without holding the lock
                refresh = open_refresh_token(self._cipher, grant)
                if refresh is None:
                    assert grant.refresh_token is not None
                    raise unreadable(self._cipher, grant.refresh_token, "the stored tokens")
                try:
                    tokens = await platform.refresh(refresh)
                except InvalidGrant as exc:
                    self._metrics.token_refreshes.labels("invalid_grant").inc()
                    reread = await self._grant(grant_id)
                    if (
                        attempt == 1
                        and reread is not None
                        and reread.token_generation != grant.token_generation
                        and reread.refresh_token is not None
                    ):
                        grant = reread  # rotated under us (a new consent): try it once
                        continue
                    detail = reauth_detail(platform.display_name)
                    await self.mark_needs_reauthorization(
                        grant_id,
                        f"{platform.display_name} answered invalid_grant to a token refresh",
                        exc.intuit_tid,
                        detail,
                    )
                    raise ReauthorizationRequired(detail) from None
                except OAuthUnavailable as exc:
                    self._metrics.token_refreshes.labels("unavailable").inc()
                    raise Unavailable(
                        f"{platform.display_name}'s token endpoint is unavailable; retry later",
                        reason="UPSTREAM_UNAVAILABLE",
                        retry_after_seconds=30,
                    ) from exc
                except OAuthError as exc:
                    self._metrics.token_refreshes.labels("error").inc()
                    raise Unavailable(
                        f"{platform.display_name} refused the token refresh ({exc.error})",
                        reason="UPSTREAM_ERROR",
                    ) from None
                generation = await self._persist(grant_id, grant.token_generation, tokens)
                self.refresh_count += 1
                self._metrics.token_refreshes.labels("ok").inc()
                log.info(
                    "refreshed a shared grant",
                    extra={"grant_id": grant_id, "provider": provider, "generation": generation},
                )
                return tokens.access_token, generation
        raise AssertionError("unreachable")  # pragma: no cover

    async def _persist(self, grant_id: str, generation: int, tokens: TokenSet) -> int:
        """Stores the rotated tokens before anyone uses them (compare-and-set)."""
        async with self._sessions.begin() as session:
            grant = await session.get(Grant, grant_id, with_for_update=True)
            if grant is None or grant.token_generation != generation:
                raise ConnectionNotLive("the authorization changed while refreshing its token")
            _seal(self._cipher, grant, tokens)
            return grant.token_generation

    async def mark_needs_reauthorization(
        self, grant_id: str, why: str, trace_id: str | None, detail: str
    ) -> None:
        """Every connected company on the grant needs re-authorization; the grant's tokens
        are wiped (audited per connection)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(Grant)
                .where(Grant.grant_id == grant_id)
                .values(
                    access_token=None,
                    refresh_token=None,
                    token_generation=Grant.token_generation + 1,
                )
            )
            rows = (
                await session.execute(
                    select(Connection)
                    .where(Connection.grant_id == grant_id, Connection.state == CONNECTED)
                    .with_for_update()
                )
            ).scalars()
            for row in rows:
                row.state = NEEDS_REAUTHORIZATION
                row.state_detail = detail
                row.disconnect_origin = "intuit"  # the platform's side (proto: ORIGIN_INTUIT)
                row.token_generation += 1
                session.add(
                    AuditEvent(
                        tenant_id=row.tenant_id,
                        subject_type="connection",
                        subject_id=row.tenant_id,
                        action="connection.needs_reauthorization",
                        actor="system",
                        reason=why,
                        details={
                            "provider": row.provider,
                            "realm_id": row.realm_id,
                            "trace_id": trace_id,
                        },
                    )
                )
        log.warning(
            "a shared grant needs re-authorization",
            extra={"grant_id": grant_id, "trace_id": trace_id, "why": why},
        )
