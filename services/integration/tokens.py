"""Access tokens for a connection: sealed at rest, refreshed once at a time.

One refresh per connection at a time, across every process: an asyncio lock per
connection inside a process, and a PostgreSQL advisory lock across processes (held on a
connection outside any transaction, ``aicollect.db.locks``). The
rotated refresh token is persisted (compare-and-set on ``token_generation``) before the
new access token is handed to anyone. On ``invalid_grant`` the stored token is re-read
once, since another process may have rotated it; if it is unchanged the connection
becomes "needs re-authorization" and every call for it stops.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.crypto import DecryptError, TokenCipher
from aicollect.db.locks import AdvisoryLock
from aicollect.errors import FailedPrecondition, NotFound, Unavailable
from aicollect.metrics import IntegrationMetrics
from aicollect.provider import Provider
from services.integration import admin
from services.integration.budget import Priority, RealmBudget
from services.integration.models import AuditEvent, Connection
from services.integration.providers.base import (
    AccountingPlatform,
    FailureKind,
    InvalidGrant,
    OAuthError,
    OAuthUnavailable,
    TokenSet,
)
from services.integration.states import CONNECTED, NEEDS_REAUTHORIZATION

log = logging.getLogger(__name__)

T = TypeVar("T")

REFRESH_MARGIN = timedelta(minutes=5)
# The key of a platform's app-wide budget in the shared ledger (no company id looks so).
APP_REALM = "*app*"

REAUTH_DETAIL = (
    "QuickBooks rejected our authorization (the app was disconnected in QuickBooks, or the "
    "authorization expired). Reconnect QuickBooks to resume syncing."
)


def token_identity(tenant_id: str, realm_id: str, kind: str) -> str:
    """Associated data binding a sealed token to its row and role."""
    return f"integration.connections:{tenant_id}:{realm_id}:{kind}"


def revocation_identity(pending_id: str) -> str:
    """Associated data of a token re-sealed for the revocation queue."""
    return f"integration.pending_revocations:{pending_id}"


RECONNECT_REMEDY = "restore the key, or have the tenant connect QuickBooks again"
REVOKE_REMEDY = "restore the key so that the revocation can go through"


def unreadable(
    cipher: TokenCipher, sealed: str, what: str, remedy: str = RECONNECT_REMEDY
) -> TokensUnreadable:
    """The error for a sealed value that cannot be opened, naming its key id (never the
    value): a key dropped from AICOLLECT_TOKEN_KEYS too early, or a damaged value."""
    kid = cipher.key_id_of(sealed)
    kid = kid if kid.isalnum() and len(kid) <= 64 else "?"
    if cipher.has_key(kid):
        why = f"sealed with key '{kid}' but failing authentication (damaged or altered)"
    else:
        why = f"sealed with key '{kid}', which is not in AICOLLECT_TOKEN_KEYS"
    return TokensUnreadable(
        f"{what} cannot be decrypted: {why}; {remedy}",
        metadata={"key_id": kid},
    )


def unreadable_tokens(cipher: TokenCipher, row: Connection) -> TokensUnreadable | None:
    """Why a connection's stored tokens cannot be decrypted with the configured keys."""
    if row.realm_id is None:
        return None
    for kind in ("access", "refresh"):
        sealed: str | None = getattr(row, f"{kind}_token")
        if sealed is None:
            continue
        try:
            cipher.open(sealed, token_identity(row.tenant_id, row.realm_id, kind))
        except DecryptError:
            return unreadable(cipher, sealed, "the stored QuickBooks tokens")
    return None


def _dt(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def sealed_token_columns(
    cipher: TokenCipher, tenant_id: str, realm_id: str, tokens: TokenSet
) -> dict[str, object]:
    """The column values that store a fresh token set for a connection."""
    columns: dict[str, object] = {
        "access_token": cipher.seal(
            tokens.access_token, token_identity(tenant_id, realm_id, "access")
        ),
        "refresh_token": cipher.seal(
            tokens.refresh_token, token_identity(tenant_id, realm_id, "refresh")
        ),
        "access_expires_at": _dt(tokens.access_expires_at),
        "refresh_expires_at": _dt(tokens.refresh_expires_at),
    }
    if tokens.refresh_hard_expires_at is not None:
        columns["refresh_hard_expires_at"] = _dt(tokens.refresh_hard_expires_at)
    return columns


class ReauthorizationRequired(FailedPrecondition):
    default_reason = "REAUTH_REQUIRED"


class ConnectionNotLive(FailedPrecondition):
    default_reason = "CONNECTION_NOT_CONNECTED"


class KillSwitchOn(FailedPrecondition):
    default_reason = "KILL_SWITCH_ON"


class TokensUnreadable(FailedPrecondition):
    """The stored tokens cannot be decrypted; ``metadata['key_id']`` names their key."""

    default_reason = "TOKENS_UNREADABLE"


@dataclass(frozen=True)
class AccessToken:
    tenant_id: str
    realm_id: str
    token: str
    generation: int
    # Set when the token is a grant shared by several companies (``grants``): its
    # generation is the grant's, and a refresh is the grant's.
    grant_id: str | None = None
    provider: str = ""


class SharedGrants(Protocol):
    """Tokens of grants shared by several companies (``grants.GrantTokens``): (access
    token, the grant's generation), refreshed once under a lock keyed by the grant."""

    refresh_count: int  # refreshes this process made

    async def access_token(self, grant_id: str, provider: str) -> tuple[str, int]: ...

    async def refresh(
        self, grant_id: str, provider: str, *, seen_generation: int, force: bool = False
    ) -> tuple[str, int]: ...


class TokenManager:
    """Hands out valid access tokens; the only code that refreshes them."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[AsyncSession],
        cipher: TokenCipher,
        oauth: AccountingPlatform,
        *,
        metrics: IntegrationMetrics | None = None,
        grants: SharedGrants | None = None,
    ) -> None:
        self._metrics = metrics or IntegrationMetrics()
        self.grants = grants  # shared grants (Xero): stored once, refreshed once
        self._engine = engine
        self._sessions = sessions
        self._cipher = cipher
        self._oauth = oauth
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.refresh_count = 0

    async def _load(self, tenant_id: str) -> Connection:
        async with self._sessions() as session:
            row = await session.get(Connection, tenant_id)
            if row is None:
                raise NotFound(
                    "this tenant has no QuickBooks connection", reason="CONNECTION_NOT_FOUND"
                )
            if await admin.kill_switch_on(session, Provider(row.provider)):
                raise KillSwitchOn(
                    f"the {Provider(row.provider).label} kill switch is on; calls are paused"
                )
        if row.state == NEEDS_REAUTHORIZATION:
            raise ReauthorizationRequired(row.state_detail or REAUTH_DETAIL)
        has_tokens = row.access_token is not None or (
            row.grant_id is not None and self.grants is not None
        )
        if row.state != CONNECTED or row.realm_id is None or not has_tokens:
            raise ConnectionNotLive("the accounting connection is not connected")
        problem = unreadable_tokens(self._cipher, row)
        if problem is not None:
            raise problem
        return row

    def _usable(self, row: Connection, now: datetime) -> AccessToken | None:
        if row.access_expires_at is None or row.access_expires_at - REFRESH_MARGIN <= now:
            return None
        assert row.realm_id is not None
        assert row.access_token is not None
        token = self._cipher.open(
            row.access_token, token_identity(row.tenant_id, row.realm_id, "access")
        )
        return AccessToken(row.tenant_id, row.realm_id, token, row.token_generation)

    async def access_token(self, tenant_id: str) -> AccessToken:
        """A token valid for at least the refresh margin; refreshes when needed."""
        row = await self._load(tenant_id)
        if row.grant_id is not None and self.grants is not None:
            assert row.realm_id is not None
            token, generation = await self.grants.access_token(row.grant_id, row.provider)
            return AccessToken(
                tenant_id, row.realm_id, token, generation, row.grant_id, row.provider
            )
        usable = self._usable(row, datetime.now(UTC))
        if usable is not None:
            return usable
        return await self._refresh(tenant_id, seen_generation=row.token_generation)

    async def after_unauthorized(self, failed: AccessToken) -> AccessToken:
        """The platform answered 401 with ``failed``: refresh unless someone already has
        (a shared grant: once for every company it covers)."""
        if failed.grant_id is not None and self.grants is not None:
            await self._load(failed.tenant_id)  # still connected, kill switch off
            token, generation = await self.grants.refresh(
                failed.grant_id, failed.provider, seen_generation=failed.generation, force=True
            )
            return replace(failed, token=token, generation=generation)
        return await self._refresh(failed.tenant_id, seen_generation=failed.generation, force=True)

    async def _refresh(
        self, tenant_id: str, *, seen_generation: int, force: bool = False
    ) -> AccessToken:
        # The lock's connection is outside any transaction: nothing sits "idle in
        # transaction" while Intuit answers, however slowly.
        async with (
            self._locks[tenant_id],
            AdvisoryLock(self._engine, f"qbo-refresh:{tenant_id}", wait=True) as lock,
        ):
            return await self._refresh_locked(tenant_id, seen_generation, force, lock)

    async def _refresh_locked(
        self, tenant_id: str, seen_generation: int, force: bool, lock: AdvisoryLock
    ) -> AccessToken:
        row = await self._load(tenant_id)
        if row.token_generation != seen_generation or not force:
            # Another caller (here or in another process) may already have refreshed.
            usable = self._usable(row, datetime.now(UTC))
            if usable is not None:
                return usable
        assert row.realm_id is not None
        assert row.refresh_token is not None
        realm_id = row.realm_id
        for attempt in (1, 2):
            lock.check()  # never refresh (and rotate the token) without holding the lock
            refresh = self._cipher.open(
                row.refresh_token, token_identity(tenant_id, realm_id, "refresh")
            )
            try:
                tokens = await self._oauth.refresh(refresh)
            except InvalidGrant as exc:
                self._metrics.token_refreshes.labels("invalid_grant").inc()
                reread = await self._load(tenant_id)
                if attempt == 1 and reread.token_generation != row.token_generation:
                    row = reread  # rotated under us (e.g. a reconnect): try the newer token once
                    assert row.refresh_token is not None
                    continue
                await self.mark_needs_reauthorization(
                    tenant_id, "Intuit answered invalid_grant to a token refresh", exc.intuit_tid
                )
                raise ReauthorizationRequired(REAUTH_DETAIL) from None
            except OAuthUnavailable as exc:
                self._metrics.token_refreshes.labels("unavailable").inc()
                raise Unavailable(
                    "Intuit's token endpoint is unavailable; retry later",
                    reason="UPSTREAM_UNAVAILABLE",
                    retry_after_seconds=30,
                ) from exc
            except OAuthError as exc:
                self._metrics.token_refreshes.labels("error").inc()
                raise Unavailable(
                    f"Intuit refused the token refresh ({exc.error})", reason="UPSTREAM_ERROR"
                ) from None
            generation = await self._persist(tenant_id, realm_id, row.token_generation, tokens)
            self.refresh_count += 1
            self._metrics.token_refreshes.labels("ok").inc()
            log.info(
                "refreshed QBO access token",
                extra={"tenant_id": tenant_id, "realm_id": realm_id, "generation": generation},
            )
            return AccessToken(tenant_id, realm_id, tokens.access_token, generation)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _persist(
        self, tenant_id: str, realm_id: str, generation: int, tokens: TokenSet
    ) -> int:
        """Stores the rotated tokens before anyone uses them (compare-and-set)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Connection)
                .where(
                    Connection.tenant_id == tenant_id,
                    Connection.token_generation == generation,
                    Connection.state == CONNECTED,
                )
                .values(
                    **sealed_token_columns(self._cipher, tenant_id, realm_id, tokens),
                    token_generation=generation + 1,
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                # Only possible if the connection changed under the lock (disconnect).
                raise ConnectionNotLive("the connection changed while refreshing its token")
        return generation + 1

    async def mark_needs_reauthorization(
        self, tenant_id: str, why: str, intuit_tid: str | None
    ) -> None:
        async with self._sessions.begin() as session:
            row = (
                await session.execute(
                    select(Connection).where(Connection.tenant_id == tenant_id).with_for_update()
                )
            ).scalar_one()
            if row.state != CONNECTED:
                return
            row.state = NEEDS_REAUTHORIZATION
            row.state_detail = REAUTH_DETAIL
            row.disconnect_origin = "intuit"
            row.access_token = None
            row.refresh_token = None
            row.token_generation += 1
            session.add(
                AuditEvent(
                    tenant_id=tenant_id,
                    subject_type="connection",
                    subject_id=tenant_id,
                    action="connection.needs_reauthorization",
                    actor="system",
                    reason=why,
                    details={"realm_id": row.realm_id, "intuit_tid": intuit_tid},
                )
            )
        log.warning(
            "connection needs re-authorization",
            extra={"tenant_id": tenant_id, "intuit_tid": intuit_tid, "why": why},
        )


class PlatformCaller:
    """Runs a platform's API calls for a tenant: a budget slot, a valid token, and the
    platform's rules, whatever the platform (its errors are read through
    ``AccountingPlatform.classify_error``).

    Throttled (QBO: 429): the realm pauses in every replica for the platform's Retry-After
    (60 s when absent) and the call waits its turn again. Unavailable (5xx, timeouts): exponential
    backoff with full jitter. Unauthorized (401): one token refresh, then the call again;
    a second refusal means the authorization is gone, so the connection is marked for
    re-authorization. The kill switch and the connection's state are checked before
    every attempt.
    """

    def __init__(
        self,
        tokens: TokenManager,
        platform: AccountingPlatform,
        budget: RealmBudget,
        *,
        max_unavailable_attempts: int = 5,
        max_throttled_attempts: int = 20,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        max_throttle_wait_s: float = 600.0,
        app_budget: RealmBudget | None = None,
    ) -> None:
        self.tokens = tokens
        self.platform = platform
        self.budget = budget
        self._max_unavailable = max_unavailable_attempts
        self._max_throttled = max_throttled_attempts
        self._base = backoff_base_s
        self._cap = backoff_cap_s
        # A throttle longer than this (Xero's daily limit: hours) pauses the company in
        # every replica and fails the call at once instead of holding it for hours.
        self._max_throttle_wait = max_throttle_wait_s
        # The whole app's budget (Xero's app-wide minute limit), taken after the company's.
        self.app_budget = app_budget

    def _app_slot(self, priority: Priority) -> AbstractAsyncContextManager[None]:
        if self.app_budget is None:
            return nullcontext()
        return self.app_budget.slot(APP_REALM, priority)

    async def call(
        self,
        tenant_id: str,
        op: Callable[[str, str], Awaitable[T]],
        *,
        priority: Priority = Priority.WEBHOOK,
    ) -> T:
        """``op(realm_id, access_token)`` under the realm's budget, with retries."""
        unavailable = throttled = 0
        refreshed = False
        token = await self.tokens.access_token(tenant_id)
        while True:
            try:
                async with (
                    self.budget.slot(token.realm_id, priority),
                    self._app_slot(priority),
                ):
                    return await op(token.realm_id, token.token)
            except Exception as exc:
                failure = self.platform.classify_error(exc)
                if failure is None or failure.kind == FailureKind.REFUSED:
                    raise
                if failure.kind == FailureKind.THROTTLED:
                    throttled += 1
                    if failure.app_wide and self.app_budget is not None:
                        await self.app_budget.throttled(APP_REALM, failure.retry_after_s)
                    else:
                        await self.budget.throttled(token.realm_id, failure.retry_after_s)
                    if (
                        throttled >= self._max_throttled
                        or failure.retry_after_s > self._max_throttle_wait
                    ):
                        raise Unavailable(
                            f"{self.platform.display_name} keeps throttling this company; "
                            "retry later",
                            retry_after_seconds=failure.retry_after_s,
                        ) from None
                elif failure.kind == FailureKind.UNAVAILABLE:
                    unavailable += 1
                    if unavailable >= self._max_unavailable:
                        raise Unavailable(
                            f"{self.platform.display_name} is unavailable "
                            f"({failure.status or 'network'}); retry later",
                            retry_after_seconds=30,
                        ) from None
                    delay = min(self._cap, self._base * 2 ** (unavailable - 1))
                    await asyncio.sleep(random.uniform(0, delay))
                else:  # UNAUTHORIZED
                    if refreshed:
                        await self.tokens.mark_needs_reauthorization(
                            tenant_id,
                            f"{self.platform.display_name} refused a fresh token "
                            f"(code {failure.code or failure.status})",
                            failure.trace_id,
                        )
                        raise ReauthorizationRequired(REAUTH_DETAIL) from None
                    refreshed = True
                    token = await self.tokens.after_unauthorized(token)
                    continue
            token = await self.tokens.access_token(tenant_id)  # kill switch, state, expiry
