"""Connecting: the connect URL and the OAuth callback.

A single-use ``state`` (stored as SHA-256, bound to the browser it was minted for) is
consumed atomically; the authorization code is exchanged only for that browser; the
callback's company id is trusted only once the provider confirms, with the new token, that
the grant covers it; the connection is stored with sealed tokens and audited. Platforms
whose grant covers several companies (Xero) choose the company in ``shared_grants``.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.db.settings_store import check_text
from aicollect.errors import Unavailable
from aicollect.provider import Provider
from aicollect.urls import with_query
from services.integration import admin, shared_grants
from services.integration.admin import IntegrationDisabled
from services.integration.budget import Priority
from services.integration.connection_base import MAX_PARAM
from services.integration.disconnect import Revocations
from services.integration.models import AuditEvent, Connection, OAuthState
from services.integration.providers.base import (
    Company,
    FailureKind,
    OAuthError,
    OAuthUnavailable,
    TokenSet,
)
from services.integration.states import CONNECTED, LIVE_STATES
from services.integration.tokens import sealed_token_columns

log = logging.getLogger(__name__)


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


class ConsentFlow(Revocations):
    """Connect URL and OAuth callback (a part of ``ConnectionService``); refused or
    replaced grants go back through ``Revocations``."""

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
