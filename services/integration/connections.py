"""The connection lifecycle: connect URL, OAuth callback, disconnect, status.

Secrets handled here (the ``state``, the browser binding, the authorization code, tokens)
never reach a log line, an error message or a reply: states and bindings are stored as
SHA-256, tokens sealed. The browser binding is the one exception to "never in a reply": it
goes back to the caller of CreateConnectUrl once, which hands it to the consenting browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.crypto import DecryptError, TokenCipher
from aicollect.db.settings_store import check_text
from aicollect.errors import FailedPrecondition, NotFound, Unavailable
from aicollect.provider import Provider
from aicollect.urls import with_query
from services.integration import admin, shared_grants
from services.integration.admin import IntegrationDisabled
from services.integration.budget import Priority, RealmBudget
from services.integration.models import AuditEvent, Connection, OAuthState, PendingRevocation
from services.integration.providers import PlatformRegistry
from services.integration.providers.base import (
    AccountingPlatform,
    Company,
    FailureKind,
    InvalidGrant,
    OAuthError,
    OAuthUnavailable,
    TokenSet,
)
from services.integration.states import (
    CONNECTED,
    DISCONNECTED,
    LIVE_STATES,
    NEEDS_REAUTHORIZATION,
    NOT_CONNECTED,
    TOKENS_UNREADABLE,
)
from services.integration.tokens import (
    REVOKE_REMEDY,
    AccessToken,
    ReauthorizationRequired,
    TokenManager,
    revocation_identity,
    sealed_token_columns,
    token_identity,
    unreadable,
    unreadable_tokens,
)

log = logging.getLogger(__name__)

REVOKE_ATTEMPTS = 3
REVOKE_BACKOFF_S = 0.2
MAX_PARAM = 2048


def hash_state(state: str) -> bytes:
    return hashlib.sha256(state.encode()).digest()


@dataclass(frozen=True)
class ConnectLink:
    """A minted connect URL and the browser binding its state only completes with."""

    authorize_url: str
    expires_at: datetime
    browser_binding: str

    def __repr__(self) -> str:  # never print the binding
        return f"ConnectLink(expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class ConnectOutcome:
    redirect_url: str
    connected: bool
    error_code: str = ""
    tenant_id: str = ""
    realm_id: str = ""
    company_name: str = ""


@dataclass(frozen=True)
class DisconnectOutcome:
    state: str
    disconnect_time: datetime | None
    revocation: str  # "revoked" | "pending_retry" | "not_needed"
    detail: str = ""


# What a Disconnect URL landing did (ReportProviderDisconnect).
REPORT_DISCONNECTED = "disconnected"  # Intuit confirmed: now disconnected
REPORT_ALREADY_DISCONNECTED = "already_disconnected"
REPORT_NOT_CONFIRMED = "not_confirmed"  # the grant still works: nothing changed
REPORT_UNKNOWN_COMPANY = "unknown_company"  # no connection holds that company
REPORT_UNCONFIRMED = "unconfirmed"  # Intuit could not be asked now: nothing changed
# A forged link repeated in a loop makes at most one confirmation call per connection per
# this interval; the refusals in between are neither sent to Intuit nor audited again.
REPORT_CONFIRM_INTERVAL = timedelta(minutes=1)
REPORT_ACTOR = "Intuit (Disconnect URL)"
REPORT_REFUSED = "connection.disconnect_report_unconfirmed"


@dataclass(frozen=True)
class DisconnectReport:
    outcome: str  # one of the REPORT_* outcomes
    redirect_url: str


@dataclass(frozen=True)
class PendingRevocationView:
    realm_id: str
    attempts: int
    last_error: str
    next_attempt_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class StatusView:
    tenant_id: str
    # NOT_CONNECTED | CONNECTED | NEEDS_REAUTHORIZATION | DISCONNECTED | TOKENS_UNREADABLE
    state: str
    state_detail: str
    realm_id: str
    company_name: str
    connect_time: datetime | None
    disconnect_time: datetime | None
    disconnect_origin: str | None
    refresh_token_expire_time: datetime | None
    qbo_enabled: bool
    qbo_kill_switch: bool
    pending_revocations: tuple[PendingRevocationView, ...] = ()
    provider: Provider = Provider.QBO
    enabled: bool = False  # the tenant's flag for ``provider``
    kill_switch: bool = False  # ``provider``'s platform kill switch


def _mark_disconnected(
    session: AsyncSession, row: Connection, origin: str, detail: str, actor: str, reason: str
) -> datetime:
    """Wipes a connection's tokens and records it disconnected (origin ``user`` or
    ``intuit``), audited in the same transaction; returns the disconnect time."""
    previous = row.state
    row.state = DISCONNECTED
    row.state_detail = detail
    row.access_token = None
    row.refresh_token = None
    row.access_expires_at = None
    row.disconnected_at = now = datetime.now(UTC)
    row.disconnect_origin = origin
    row.token_generation += 1
    session.add(
        AuditEvent(
            tenant_id=row.tenant_id,
            subject_type="connection",
            subject_id=row.tenant_id,
            action="connection.disconnected",
            actor=actor[:200],
            reason=reason[:2000],
            details={
                "provider": row.provider,
                "realm_id": row.realm_id,
                "previous_state": previous,
                "origin": origin,
            },
        )
    )
    return now


@dataclass
class ConnectionService:
    sessions: async_sessionmaker[AsyncSession]
    cipher: TokenCipher
    platforms: PlatformRegistry
    dashboard_url: str
    state_ttl: timedelta = timedelta(minutes=10)
    # Called after every successful connect (the sync queues the backfill); never blocks
    # on the backfill itself, and its failure never undoes the connection.
    on_connected: Callable[[str, str], Awaitable[None]] | None = None
    # Confirms a disconnect reported on the Disconnect URL with a token refresh.
    tokens: TokenManager | None = None
    # Each platform's per-company request budget (by provider name): the callback's
    # company check is a request against the company's limits like any other.
    budgets: Mapping[str, RealmBudget] | None = None

    def _platform(self, provider: str) -> AccountingPlatform:
        """The platform behind a provider name (a request's, or a stored row's)."""
        return self.platforms.platform_for(provider)

    # -- connect -------------------------------------------------------------------------

    async def create_connect_url(
        self, tenant_id: str, actor: str, provider: Provider = Provider.QBO
    ) -> ConnectLink:
        tenant_id = admin.validate_tenant_id(tenant_id)
        async with self.sessions.begin() as session:
            await admin.ensure_enabled(session, tenant_id, provider)
            state = secrets.token_urlsafe(32)  # 256 random bits
            binding = secrets.token_urlsafe(32)  # 256 random bits, for the browser's cookie
            expires = datetime.now(UTC) + self.state_ttl
            session.add(
                OAuthState(
                    state_hash=hash_state(state),
                    tenant_id=tenant_id,
                    provider=provider.value,
                    actor=check_text(actor, "actor", 200) or "dashboard",
                    expires_at=expires,
                    binding_hash=hash_state(binding),
                )
            )
        try:
            url = await self._platform(provider.value).authorize_url(state)
        except OAuthUnavailable as exc:
            raise Unavailable(
                "Intuit's OAuth discovery document is unavailable; try again shortly",
                retry_after_seconds=10,
            ) from exc
        log.info("minted connect URL", extra={"tenant_id": tenant_id, "provider": provider.value})
        return ConnectLink(url, expires, binding)

    # -- callback ------------------------------------------------------------------------

    async def _fail(
        self, provider: Provider, code: str, tenant_id: str = "", realm_id: str = ""
    ) -> ConnectOutcome:
        """Logs and audits a refused callback; nothing secret goes into either."""
        log.info(
            "connection callback failed",
            extra={
                "reason": code,
                "tenant_id": tenant_id,
                "realm_id": realm_id,
                "provider": provider.value,
            },
        )
        if tenant_id:  # a state that resolved to no tenant has nobody to audit for
            async with self.sessions.begin() as session:
                session.add(
                    AuditEvent(
                        tenant_id=tenant_id,
                        subject_type="connection",
                        subject_id=tenant_id,
                        action="connection.refused",
                        actor="OAuth callback",
                        reason=code,
                        details={
                            "reason": code,
                            "claimed_realm_id": realm_id or None,
                            "provider": provider.value,
                        },
                    )
                )
        return ConnectOutcome(
            with_query(self.dashboard_url, **{provider.redirect_param: "error"}, reason=code),
            False,
            code,
            tenant_id,
            realm_id,
        )

    async def _consume_state(
        self, provider: Provider, state: str, browser_binding: str
    ) -> tuple[str | None, str]:
        """Consumes the state atomically: (tenant_id, "") or (tenant_id or None, error code).

        A state presented by another browser than the one it was minted for is spent all
        the same (``browser_mismatch``): a link that has left its browser is not reused.
        A state minted for another provider is ``invalid_state`` and stays unspent."""
        if not state or len(state) > MAX_PARAM:
            return None, "invalid_state"
        digest = hash_state(state)
        async with self.sessions.begin() as session:
            consumed = (
                await session.execute(
                    update(OAuthState)
                    .where(
                        OAuthState.state_hash == digest,
                        OAuthState.provider == provider.value,
                        OAuthState.consumed_at.is_(None),
                        OAuthState.expires_at > datetime.now(UTC),
                    )
                    .values(consumed_at=datetime.now(UTC))
                    .returning(OAuthState.tenant_id, OAuthState.binding_hash)
                )
            ).one_or_none()
            if consumed is not None:
                tenant_id, binding_hash = consumed
                presented = hash_state(browser_binding[:MAX_PARAM]) if browser_binding else b""
                if binding_hash is None or not hmac.compare_digest(binding_hash, presented):
                    return tenant_id, "browser_mismatch"
                return tenant_id, ""
            row = await session.get(OAuthState, digest)
        if row is None or row.provider != provider.value:
            return None, "invalid_state"
        if row.consumed_at is not None:
            return None, "state_already_used"
        return None, "expired_state"

    async def complete_connection(
        self,
        *,
        state: str,
        code: str,
        realm_id: str,
        error: str,
        error_description: str,
        browser_binding: str = "",
        provider: Provider = Provider.QBO,
    ) -> ConnectOutcome:
        tenant_id, problem = await self._consume_state(provider, state, browser_binding)
        if tenant_id is None or problem:
            # browser_mismatch included: the code is never exchanged for a foreign browser.
            return await self._fail(provider, problem, tenant_id or "")
        if error:
            return await self._fail(
                provider,
                "access_denied" if error == "access_denied" else "authorization_error",
                tenant_id,
            )
        if self._platform(provider.value).shared_grants:
            # The callback names no company: the consent's own choice is asked for.
            if not code or len(code) > MAX_PARAM:
                return await self._fail(provider, "authorization_error", tenant_id)
            done = await shared_grants.complete(self, provider, tenant_id, code)
            if done.company is None:
                return await self._fail(provider, done.problem, tenant_id)
            if done.replaced is not None:
                await self._revoke_pending(done.replaced)
            return await self._connected(
                provider, tenant_id, done.company.company_id, done.company.name
            )
        if not realm_id:
            return await self._fail(provider, "missing_realm", tenant_id)
        if len(realm_id) > 64 or not realm_id.isalnum() or not code or len(code) > MAX_PARAM:
            return await self._fail(provider, "authorization_error", tenant_id)
        async with self.sessions() as session:
            try:
                await admin.ensure_enabled(session, tenant_id, provider)
                problem = ""
            except IntegrationDisabled:
                problem = "integration_disabled"
            if not problem and await self._realm_taken(session, provider, realm_id, tenant_id):
                problem = "realm_in_use"
        if problem:
            return await self._fail(provider, problem, tenant_id, realm_id)
        try:
            tokens = await self._platform(provider.value).exchange_code(code)
        except (OAuthError, OAuthUnavailable) as exc:
            log.warning(
                "authorization code exchange failed",
                extra={
                    "tenant_id": tenant_id,
                    "realm_id": realm_id,
                    "error": getattr(exc, "error", type(exc).__name__),
                    "intuit_tid": getattr(exc, "intuit_tid", None),
                },
            )
            return await self._fail(provider, "code_exchange_failed", tenant_id, realm_id)
        company_name, problem = await self._verify_realm(provider, realm_id, tokens)
        if problem:
            # Nothing was stored or reserved; the grant we were given goes back to Intuit.
            await self._revoke_quietly(provider, tokens.refresh_token)
            return await self._fail(provider, problem, tenant_id, realm_id)
        try:
            replaced = await self._store_connection(
                provider, tenant_id, realm_id, company_name, tokens
            )
        except IntegrityError:
            # Another tenant connected the same realm between our check and our write.
            await self._revoke_quietly(provider, tokens.refresh_token)
            return await self._fail(provider, "realm_in_use", tenant_id, realm_id)
        if replaced is not None:
            await self._revoke_pending(replaced)
        return await self._connected(provider, tenant_id, realm_id, company_name)

    async def _connected(
        self, provider: Provider, tenant_id: str, realm_id: str, company_name: str
    ) -> ConnectOutcome:
        """A stored connection: the backfill is queued, the browser goes to the dashboard."""
        log.info("connected", extra={"tenant_id": tenant_id, "realm_id": realm_id})
        if self.on_connected is not None:
            try:
                await self.on_connected(tenant_id, realm_id)
            except Exception:  # the sync scheduler also finds connected realms by itself
                log.exception("could not queue the backfill", extra={"tenant_id": tenant_id})
        return ConnectOutcome(
            with_query(self.dashboard_url, **{provider.redirect_param: "connected"}),
            True,
            "",
            tenant_id,
            realm_id,
            company_name,
        )

    async def _realm_taken(
        self, session: AsyncSession, provider: Provider, realm_id: str, tenant_id: str
    ) -> bool:
        """Whether another tenant holds this company live (a company id is unique per
        provider, not globally)."""
        other = await session.execute(
            select(Connection.tenant_id).where(
                Connection.provider == provider.value,
                Connection.realm_id == realm_id,
                Connection.state.in_(LIVE_STATES),
                Connection.tenant_id != tenant_id,
            )
        )
        return other.first() is not None

    async def _verify_realm(
        self, provider: Provider, realm_id: str, tokens: TokenSet
    ) -> tuple[str, str]:
        """(company name, "") when QBO confirms, with the new token, that the grant covers
        ``realm_id``; ("", error code) otherwise. The callback's ``realmId`` is a query
        parameter anyone can edit: it is never trusted on its own."""
        platform = self._platform(provider.value)
        budget = None if self.budgets is None else self.budgets.get(platform.name)
        try:
            if budget is None:
                company = await platform.company(realm_id, tokens.access_token)
            else:
                async with budget.slot(realm_id, Priority.WEBHOOK):
                    company = await platform.company(realm_id, tokens.access_token)
        except Exception as exc:
            failure = platform.classify_error(exc)
            if failure is None:
                raise
            if failure.kind == FailureKind.THROTTLED and budget is not None:
                await budget.throttled(realm_id, failure.retry_after_s)  # for every replica
            if failure.kind in (FailureKind.UNAVAILABLE, FailureKind.THROTTLED):
                log.warning(
                    "could not verify the realm: QBO unavailable",
                    extra={"realm_id": realm_id, "intuit_tid": failure.trace_id},
                )
                return "", "unavailable"
            log.warning(
                "the new token does not cover the callback's realm",
                extra={
                    "realm_id": realm_id,
                    "status": failure.status,
                    "auth_error": failure.kind == FailureKind.UNAUTHORIZED,
                    "intuit_tid": failure.trace_id,
                },
            )
            return "", "realm_mismatch"
        if company is None:  # a 200 without the company confirms nothing
            return "", "realm_mismatch"
        return company.name, ""

    async def _store_connection(
        self,
        provider: Provider,
        tenant_id: str,
        realm_id: str,
        company_name: str,
        tokens: TokenSet,
    ) -> str | None:
        """Writes the connection; returns a pending-revocation id for replaced tokens."""
        now = datetime.now(UTC)
        replaced_id: str | None = None
        release: Company | None = None
        grant_id = released_provider = ""
        async with self.sessions.begin() as session:
            row = (
                await session.execute(
                    select(Connection).where(Connection.tenant_id == tenant_id).with_for_update()
                )
            ).scalar_one_or_none()
            previous = None
            if row is None:
                row = Connection(tenant_id=tenant_id, token_generation=0, state=CONNECTED)
                session.add(row)
            else:
                previous = (row.state, row.realm_id)
                # Switching companies: the old company's tokens are revoked. Reconnecting the
                # same company must not revoke: at Intuit that would disconnect the new grant.
                switching = row.realm_id is not None and (row.provider, row.realm_id) != (
                    provider.value,
                    realm_id,
                )
                if row.refresh_token and switching:
                    replaced_id = self._queue_revocation(session, row)
                elif row.grant_id is not None:  # from a shared grant (Xero) to this one
                    released_provider = row.provider
                    replaced_id, release, grant_id = await shared_grants.disconnect_row(
                        self, session, row
                    )
                    row.platform_connection_id = None
            for column, value in sealed_token_columns(
                self.cipher, tenant_id, realm_id, tokens
            ).items():
                setattr(row, column, value)
            row.provider = provider.value
            row.realm_id = realm_id
            row.company_name = company_name
            row.state = CONNECTED
            row.state_detail = ""
            row.connected_at = now
            row.disconnected_at = None
            row.disconnect_origin = None
            row.token_generation = (row.token_generation or 0) + 1
            if tokens.refresh_hard_expires_at is None:
                row.refresh_hard_expires_at = None
            session.add(
                AuditEvent(
                    tenant_id=tenant_id,
                    subject_type="connection",
                    subject_id=tenant_id,
                    action="connection.connected",
                    actor="creditor (OAuth consent)",
                    reason="completed Intuit's consent screen",
                    details={
                        "provider": provider.value,
                        "realm_id": realm_id,
                        "company_name": company_name,
                        "previous_state": previous[0] if previous else None,
                        "previous_realm_id": previous[1] if previous else None,
                    },
                )
            )
            await session.flush()
        if release is not None:  # the Xero organisation it had, its grant still in use
            problem = await shared_grants.release(self, released_provider, grant_id, release)
            if problem:
                log.warning("could not release the previous organisation", extra={"why": problem})
        return replaced_id

    # -- disconnect ----------------------------------------------------------------------

    def _queue_revocation(self, session: AsyncSession, row: Connection) -> str:
        """Moves a connection's refresh token to the revocation queue (same transaction)."""
        assert row.realm_id is not None
        assert row.refresh_token is not None
        identity = token_identity(row.tenant_id, row.realm_id, "refresh")
        pending_id = uuid.uuid4().hex
        kept_identity: str | None = None
        try:
            token = self.cipher.seal(
                self.cipher.open(row.refresh_token, identity), revocation_identity(pending_id)
            )
        except DecryptError:
            # Its key is missing: queue it sealed as it is; the retries say why they fail
            # and the revocation goes through once the key is restored.
            token, kept_identity = row.refresh_token, identity
        session.add(
            PendingRevocation(
                id=pending_id,
                tenant_id=row.tenant_id,
                realm_id=row.realm_id,
                provider=row.provider,
                token=token,
                token_identity=kept_identity,
                attempts=0,
                last_error="",
                next_attempt_at=datetime.now(UTC),
            )
        )
        return pending_id

    async def disconnect(
        self, tenant_id: str, actor: str, reason: str, provider: Provider = Provider.QBO
    ) -> DisconnectOutcome:
        tenant_id = admin.validate_tenant_id(tenant_id)
        actor = check_text(actor, "actor", 200) or "dashboard"
        reason = check_text(reason, "reason", 2000) or "disconnected by the tenant"
        async with self.sessions.begin() as session:
            row = (
                await session.execute(
                    select(Connection).where(Connection.tenant_id == tenant_id).with_for_update()
                )
            ).scalar_one_or_none()
            if row is None or row.provider != provider.value:
                raise NotFound(
                    f"this tenant has no {provider.label} connection",
                    reason="CONNECTION_NOT_FOUND",
                )
            if row.state == DISCONNECTED:
                return DisconnectOutcome(DISCONNECTED, row.disconnected_at, "not_needed")
            pending_id = None
            release: Company | None = None
            grant_id = ""
            if row.grant_id is not None:  # a grant other companies of ours may share
                pending_id, release, grant_id = await shared_grants.disconnect_row(
                    self, session, row
                )
            elif row.state == CONNECTED and row.refresh_token:
                pending_id = self._queue_revocation(session, row)
            disconnected_at = _mark_disconnected(
                session, row, "user", "disconnected from the dashboard", actor, reason
            )
        if release is not None:
            # Other connections of ours use the grant: only this company's link goes.
            problem = await shared_grants.release(self, provider.value, grant_id, release)
            return DisconnectOutcome(
                DISCONNECTED,
                disconnected_at,
                "not_needed",
                problem
                or f"{provider.label} disconnected this organisation; the authorization "
                "stays for the other organisations that use it",
            )
        if pending_id is None:
            return DisconnectOutcome(DISCONNECTED, disconnected_at, "not_needed")
        revoked, detail = await self._revoke_pending(pending_id)
        return DisconnectOutcome(
            DISCONNECTED, disconnected_at, "revoked" if revoked else "pending_retry", detail
        )

    async def _revoke_pending(self, pending_id: str) -> tuple[bool, str]:
        """Tries a queued revocation a few times now; the retrier keeps trying after that."""
        detail = ""
        for attempt in range(REVOKE_ATTEMPTS):
            done, detail = await self.retry_revocation(pending_id)
            if done:
                return True, ""
            await asyncio.sleep(REVOKE_BACKOFF_S * (2**attempt))
        return False, detail

    async def retry_revocation(self, pending_id: str) -> tuple[bool, str]:
        """One attempt at a queued revocation; deletes it when Intuit confirms."""
        async with self.sessions() as session:
            row = await session.get(PendingRevocation, pending_id)
            if row is None:
                return True, ""
            if await admin.kill_switch_on(session, Provider(row.provider)):
                return False, "kill switch on: revocation waits until it is lifted"
            identity = row.token_identity or revocation_identity(pending_id)
            try:
                token = self.cipher.open(row.token, identity)
            except DecryptError:
                token = None
                problem = unreadable(
                    self.cipher, row.token, "the token to revoke", REVOKE_REMEDY
                ).message
        if token is None:
            await self._revocation_failed(pending_id, problem)
            return False, problem
        try:
            await self._platform(row.provider).revoke(token)
        except InvalidGrant:
            pass  # already invalid at Intuit: nothing left to revoke
        except (OAuthError, OAuthUnavailable) as exc:
            message = f"Intuit did not confirm the revocation: {exc}"
            await self._revocation_failed(pending_id, message)
            return False, message
        async with self.sessions.begin() as session:
            pending = await session.get(PendingRevocation, pending_id)
            if pending is not None:
                await session.delete(pending)
                session.add(
                    AuditEvent(
                        tenant_id=pending.tenant_id,
                        subject_type="connection",
                        subject_id=pending.tenant_id,
                        action="connection.tokens_revoked",
                        actor="system",
                        reason="revoked at Intuit",
                        details={"realm_id": pending.realm_id, "attempts": pending.attempts + 1},
                    )
                )
        return True, ""

    async def _revocation_failed(self, pending_id: str, message: str) -> None:
        """Records a failed attempt on its row (attempts, last error, next attempt)."""
        async with self.sessions.begin() as session:
            pending = await session.get(PendingRevocation, pending_id, with_for_update=True)
            if pending is None:
                return
            pending.attempts += 1
            pending.last_error = message[:500]
            delay = min(6 * 3600, 30 * 2 ** min(pending.attempts, 10))
            pending.next_attempt_at = datetime.now(UTC) + timedelta(seconds=delay)
            attempts, tenant_id, realm_id = pending.attempts, pending.tenant_id, pending.realm_id
        log.warning(
            "token revocation failed; will retry",
            extra={
                "pending_id": pending_id,
                "tenant_id": tenant_id,
                "realm_id": realm_id,
                "attempts": attempts,
                "error": message[:500],
                "retry_in_s": delay,
            },
        )

    async def retry_due_revocations(self, limit: int = 50) -> int:
        """One round of the background retrier; returns how many were revoked. Each row
        is tried on its own: one that fails, for whatever reason, never keeps the others
        (other tenants' grants) from being revoked."""
        revoked = 0
        for pending_id in await self.due_revocations(limit):
            try:
                done, _ = await self.retry_revocation(pending_id)
            except Exception as exc:
                log.exception("token revocation attempt failed", extra={"pending_id": pending_id})
                with contextlib.suppress(Exception):
                    await self._revocation_failed(
                        pending_id, f"internal error ({type(exc).__name__}); see the logs"
                    )
                continue
            revoked += done
        return revoked

    async def due_revocations(self, limit: int = 50) -> list[str]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(PendingRevocation.id)
                .where(PendingRevocation.next_attempt_at <= datetime.now(UTC))
                .order_by(PendingRevocation.next_attempt_at)
                .limit(limit)
            )
            return list(rows.scalars())

    async def _revoke_quietly(self, provider: Provider, refresh_token: str) -> None:
        try:
            await self._platform(provider.value).revoke(refresh_token)
        except (OAuthError, OAuthUnavailable):
            log.warning("could not revoke tokens of a refused connection")

    # -- disconnected on the provider's side (the Disconnect URL) ------------------------

    async def report_provider_disconnect(
        self, provider: Provider, realm_id: str
    ) -> DisconnectReport:
        """The browser landed on the Disconnect URL naming ``realm_id``.

        The landing is a GET anyone can forge, so it is only a report: the live connection
        holding that company becomes disconnected (origin ``intuit``) once Intuit confirms
        that its grant is gone -- a token refresh answered ``invalid_grant`` (asked now
        for a connected row; already recorded for one needing re-authorization). A grant
        that still works changes nothing; neither does an unknown company."""
        outcome = await self._handle_report(provider, realm_id[:MAX_PARAM])
        value = (
            "disconnected"
            if outcome in (REPORT_DISCONNECTED, REPORT_ALREADY_DISCONNECTED)
            else "disconnect_unconfirmed"
        )
        log.info(
            "Disconnect URL landing",
            extra={"provider": provider.value, "realm_id": realm_id[:64], "outcome": outcome},
        )
        return DisconnectReport(
            outcome, with_query(self.dashboard_url, **{provider.redirect_param: value})
        )

    async def _handle_report(self, provider: Provider, realm_id: str) -> str:
        if not realm_id or len(realm_id) > 64 or not realm_id.isalnum():
            return REPORT_UNKNOWN_COMPANY
        async with self.sessions() as session:
            holders = (
                await session.execute(
                    select(Connection.tenant_id, Connection.state).where(
                        Connection.provider == provider.value, Connection.realm_id == realm_id
                    )
                )
            ).all()
        live = [(t, s) for t, s in holders if s in LIVE_STATES]
        if not live:
            return REPORT_ALREADY_DISCONNECTED if holders else REPORT_UNKNOWN_COMPANY
        tenant_id, state = live[0]  # a company is held live by one tenant at most
        if state == CONNECTED:
            why = await self._confirm_revoked(tenant_id, provider, realm_id)
            if why:
                return why
        # Intuit has refused the grant (now, or on an earlier call): the report holds.
        changed = await self._disconnected_by_provider(tenant_id, provider, realm_id)
        return REPORT_DISCONNECTED if changed else REPORT_ALREADY_DISCONNECTED

    async def _confirm_revoked(self, tenant_id: str, provider: Provider, realm_id: str) -> str:
        """ "" when Intuit refuses the connection's grant (it is then marked as needing
        re-authorization by the token manager, as on any call); otherwise the outcome of
        a report that changes nothing, audited."""
        if self.tokens is None:
            return REPORT_UNCONFIRMED
        async with self.sessions() as session:
            row = await session.get(Connection, tenant_id)
            recent = (
                await session.execute(
                    select(AuditEvent.id)
                    .where(
                        AuditEvent.tenant_id == tenant_id,
                        AuditEvent.action == REPORT_REFUSED,
                        AuditEvent.created_at > datetime.now(UTC) - REPORT_CONFIRM_INTERVAL,
                    )
                    .limit(1)
                )
            ).first()
        if row is None or row.state != CONNECTED or row.realm_id != realm_id:
            return REPORT_UNCONFIRMED  # changed since we looked: let the next call decide
        if recent is not None:
            return REPORT_UNCONFIRMED
        try:
            # A forced refresh under the token manager's lock (the rotated token is stored
            # as on any refresh): invalid_grant is Intuit's definite "the grant is gone".
            await self.tokens.after_unauthorized(
                AccessToken(tenant_id, realm_id, "", row.token_generation)
            )
        except ReauthorizationRequired:
            return ""
        except (FailedPrecondition, NotFound, Unavailable) as exc:
            outcome, why = REPORT_UNCONFIRMED, f"Intuit could not be asked: {exc}"
        else:
            outcome, why = REPORT_NOT_CONFIRMED, "Intuit still honours the grant"
        async with self.sessions.begin() as session:
            session.add(
                AuditEvent(
                    tenant_id=tenant_id,
                    subject_type="connection",
                    subject_id=tenant_id,
                    action=REPORT_REFUSED,
                    actor=REPORT_ACTOR,
                    reason=why[:2000],
                    details={"provider": provider.value, "realm_id": realm_id, "outcome": outcome},
                )
            )
        return outcome

    async def _disconnected_by_provider(
        self, tenant_id: str, provider: Provider, realm_id: str
    ) -> bool:
        """A connection whose grant Intuit refused becomes disconnected, origin ``intuit``;
        False when it is no longer that company's connection needing re-authorization."""
        async with self.sessions.begin() as session:
            row = (
                await session.execute(
                    select(Connection).where(Connection.tenant_id == tenant_id).with_for_update()
                )
            ).scalar_one_or_none()
            if (
                row is None
                or row.state != NEEDS_REAUTHORIZATION
                or (row.provider, row.realm_id) != (provider.value, realm_id)
            ):
                return False
            _mark_disconnected(
                session,
                row,
                "intuit",
                f"disconnected in {provider.label} (the app was removed on {provider.label}'s "
                "side); connect again to resume syncing",
                REPORT_ACTOR,
                f"disconnected on {provider.label}'s side; Intuit refused the grant",
            )
        return True

    # -- status --------------------------------------------------------------------------

    async def status(self, tenant_id: str, provider: Provider = Provider.QBO) -> StatusView:
        """The tenant's connection to ``provider`` (not connected when its one connection
        is to another provider); ``qbo_*`` are always QBO's flags."""
        tenant_id = admin.validate_tenant_id(tenant_id)
        async with self.sessions() as session:
            flags = await admin.get_tenant_flags(session, tenant_id)
            qbo_kill = await admin.kill_switch_on(session, Provider.QBO)
            kill = await admin.kill_switch_on(session, provider)
            row = await session.get(Connection, tenant_id)
            if row is not None and row.provider != provider.value:
                row = None
            pending = tuple(
                PendingRevocationView(
                    p.realm_id, p.attempts, p.last_error, p.next_attempt_at, p.created_at
                )
                for p in (
                    await session.execute(
                        select(PendingRevocation)
                        .where(
                            PendingRevocation.tenant_id == tenant_id,
                            PendingRevocation.provider == provider.value,
                        )
                        .order_by(PendingRevocation.created_at, PendingRevocation.id)
                    )
                ).scalars()
            )
        enabled = flags.is_enabled(provider)
        if row is None:
            return StatusView(
                tenant_id, NOT_CONNECTED, "", "", "", None, None, None, None,
                flags.qbo_enabled, qbo_kill, pending, provider, enabled, kill,
            )  # fmt: skip
        state, detail = row.state, row.state_detail
        if state == CONNECTED:
            problem = unreadable_tokens(self.cipher, row)
            if problem is not None:
                state, detail = TOKENS_UNREADABLE, problem.message
        return StatusView(
            tenant_id=tenant_id,
            state=state,
            state_detail=detail,
            realm_id=row.realm_id or "",
            company_name=row.company_name,
            connect_time=row.connected_at,
            disconnect_time=row.disconnected_at,
            disconnect_origin=row.disconnect_origin,
            refresh_token_expire_time=row.refresh_hard_expires_at,
            qbo_enabled=flags.qbo_enabled,
            qbo_kill_switch=qbo_kill,
            pending_revocations=pending,
            provider=provider,
            enabled=enabled,
            kill_switch=kill,
        )
