"""Connect and disconnect for platforms whose grant covers several companies (Xero).

The callback names no company: the organisation this tenant connects is the one chosen
in *this* consent (``AccountingPlatform.consented_companies``: Xero's ``/connections``
filtered by the token's ``authEventId``), less those another tenant of ours holds. The
grant is stored once per platform user (``grants.store_grant``); the connection points at
it. Disconnecting one organisation releases only that organisation (Xero: DELETE
/connections/{id}) while another connection of ours still uses the grant; the last one
revokes the grant (which at Xero also removes every connection of that user).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.crypto import TokenCipher
from aicollect.errors import DomainError
from aicollect.provider import Provider
from services.integration import admin
from services.integration.admin import IntegrationDisabled
from services.integration.grants import (
    forget_grant,
    grant_users,
    open_refresh_token,
    store_grant,
)
from services.integration.models import AuditEvent, Connection, Grant, PendingRevocation
from services.integration.providers import PlatformRegistry
from services.integration.providers.base import (
    AccountingPlatform,
    Company,
    OAuthError,
    OAuthUnavailable,
    TokenSet,
)
from services.integration.states import CONNECTED, LIVE_STATES
from services.integration.tokens import TokenManager, revocation_identity

log = logging.getLogger(__name__)


class Host(Protocol):
    """What these functions use of the connection service (``ConnectionService``)."""

    sessions: async_sessionmaker[AsyncSession]
    cipher: TokenCipher
    platforms: PlatformRegistry
    tokens: TokenManager | None

    def _queue_revocation(self, session: AsyncSession, row: Connection) -> str: ...


SEVERAL_ORGANISATIONS = "several_organisations"


async def _held_by_us(host: Host, provider: Provider, ids: list[str]) -> dict[str, str]:
    """company id -> the tenant of ours holding it live."""
    if not ids:
        return {}
    async with host.sessions() as session:
        rows = await session.execute(
            select(Connection.realm_id, Connection.tenant_id).where(
                Connection.provider == provider.value,
                Connection.realm_id.in_(ids),
                Connection.state.in_(LIVE_STATES),
            )
        )
        return {realm: tenant for realm, tenant in rows.all() if realm is not None}


async def _subject_in_use(host: Host, provider: Provider, subject: str) -> bool:
    """Whether a stored grant of this platform user is used by a connection of ours."""
    async with host.sessions() as session:
        grant_id = await session.scalar(
            select(Grant.grant_id).where(Grant.provider == provider.value, Grant.subject == subject)
        )
        return grant_id is not None and await grant_users(session, grant_id) > 0


async def _let_go(
    host: Host,
    platform: AccountingPlatform,
    provider: Provider,
    tokens: TokenSet,
    companies: list[Company],
    keep: set[str],
) -> None:
    """After a consent: releases the consented companies nobody of ours uses (least
    privilege), and revokes the new grant when no company of ours uses its user at all."""
    held = await _held_by_us(host, provider, [c.company_id for c in companies])
    if not keep and not held and not await _subject_in_use(host, provider, tokens.subject):
        try:
            await platform.revoke(tokens.refresh_token)
        except (OAuthError, OAuthUnavailable):
            log.warning("could not revoke the grant of a refused connection")
        return
    for company in companies:
        if company.company_id in keep or company.company_id in held:
            continue
        try:
            await platform.release_company(company, tokens.access_token)
        except Exception as exc:  # best effort: never fails the callback
            log.warning(
                "could not release an organisation we do not use",
                extra={"realm_id": company.company_id, "error": type(exc).__name__},
            )


def _choose(
    companies: list[Company], held: dict[str, str], tenant_id: str, current: str | None
) -> tuple[Company | None, str]:
    """The company this tenant connects, or the refusal's code."""
    if not companies:
        return None, "missing_realm"
    free = [c for c in companies if held.get(c.company_id, tenant_id) == tenant_id]
    if not free:
        return None, "realm_in_use"
    for company in free:
        if company.company_id == current:
            return company, ""  # reconnecting the organisation it had
    if len(free) > 1:
        return None, SEVERAL_ORGANISATIONS
    return free[0], ""


@dataclass(frozen=True)
class Consented:
    """The callback's result: the company connected (``replaced``: a pending revocation of
    the tokens it replaced), or the refusal's code (``company`` None)."""

    company: Company | None
    problem: str = ""
    replaced: str | None = None


async def complete(host: Host, provider: Provider, tenant_id: str, code: str) -> Consented:
    """Exchanges the code, finds the consent's organisation, stores the grant and the
    connection. The caller audits a refusal and reports the outcome."""
    platform = host.platforms.platform_for(provider.value)
    async with host.sessions() as session:
        try:
            await admin.ensure_enabled(session, tenant_id, provider)
        except IntegrationDisabled:
            return Consented(None, "integration_disabled")
        current = await session.get(Connection, tenant_id)
        current_realm = current.realm_id if current is not None else None
    try:
        tokens = await platform.exchange_code(code)
    except (OAuthError, OAuthUnavailable) as exc:
        log.warning(
            "authorization code exchange failed",
            extra={"tenant_id": tenant_id, "error": getattr(exc, "error", type(exc).__name__)},
        )
        return Consented(None, "code_exchange_failed")
    if not tokens.subject or not tokens.consent_id:
        # Without the user and the consent we cannot tell which organisation was chosen.
        return Consented(None, "missing_realm")
    try:
        companies = await platform.consented_companies(tokens)
    except Exception as exc:
        if platform.classify_error(exc) is None:
            raise
        log.warning("could not list the consent's organisations", extra={"tenant_id": tenant_id})
        return Consented(None, "unavailable")
    held = await _held_by_us(host, provider, [c.company_id for c in companies])
    chosen, problem = _choose(companies, held, tenant_id, current_realm)
    if chosen is None:
        await _let_go(host, platform, provider, tokens, companies, keep=set())
        return Consented(None, problem)
    try:
        replaced, releases = await _store(host, provider, tenant_id, chosen, tokens)
    except IntegrityError:  # another tenant took it between our check and our write
        await _let_go(host, platform, provider, tokens, companies, keep=set())
        return Consented(None, "realm_in_use")
    await _let_go(host, platform, provider, tokens, companies, keep={chosen.company_id})
    for grant_id, company in releases:  # the organisation this tenant had before
        problem = await release(host, provider.value, grant_id, company)
        if problem:
            log.warning("could not release the previous organisation", extra={"why": problem})
    return Consented(chosen, "", replaced)


async def _store(
    host: Host, provider: Provider, tenant_id: str, company: Company, tokens: TokenSet
) -> tuple[str | None, list[tuple[str, Company]]]:
    """Stores the grant and points the tenant's connection at it. Returns a pending
    revocation id for tokens this replaces (a previous company's own, or a grant nobody
    else uses any more) and the previous organisation to release (grant id, company)."""
    replaced: str | None = None
    releases: list[tuple[str, Company]] = []
    async with host.sessions.begin() as session:
        grant_id = await store_grant(session, host.cipher, provider.value, tokens)
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
            previous = (row.state, row.provider, row.realm_id)
            if row.refresh_token and row.realm_id is not None:
                replaced = host._queue_revocation(session, row)  # a QBO company's own grant
            elif row.grant_id and row.state in LIVE_STATES and row.realm_id != company.company_id:
                old = Company(
                    row.realm_id or "", row.company_name, row.platform_connection_id or ""
                )
                if row.grant_id == grant_id:
                    releases.append((grant_id, old))  # the same user: release that one only
                else:  # another user's grant: released, or revoked if nobody else uses it
                    replaced, gone, old_grant = await disconnect_row(host, session, row)
                    if gone is not None:
                        releases.append((old_grant, gone))
        row.provider = provider.value
        row.realm_id = company.company_id
        row.company_name = company.name
        row.grant_id = grant_id
        row.platform_connection_id = company.connection_id or None
        row.access_token = row.refresh_token = None
        row.access_expires_at = datetime.fromtimestamp(tokens.access_expires_at, UTC)
        row.refresh_expires_at = (
            datetime.fromtimestamp(tokens.refresh_expires_at, UTC)
            if tokens.refresh_expires_at
            else None
        )
        row.refresh_hard_expires_at = None
        row.state = CONNECTED
        row.state_detail = ""
        row.connected_at = datetime.now(UTC)
        row.disconnected_at = None
        row.disconnect_origin = None
        row.token_generation = (row.token_generation or 0) + 1
        session.add(
            AuditEvent(
                tenant_id=tenant_id,
                subject_type="connection",
                subject_id=tenant_id,
                action="connection.connected",
                actor="creditor (OAuth consent)",
                reason=f"completed {provider.label}'s consent screen",
                details={
                    "provider": provider.value,
                    "realm_id": company.company_id,
                    "company_name": company.name,
                    "grant_id": grant_id,
                    "previous_state": previous[0] if previous else None,
                    "previous_provider": previous[1] if previous else None,
                    "previous_realm_id": previous[2] if previous else None,
                },
            )
        )
        await session.flush()
    return replaced, releases


async def _queue_grant_revocation(host: Host, session: AsyncSession, row: Connection) -> str | None:
    """Queues the revocation of ``row``'s shared grant when no other live connection uses
    it (same transaction) and forgets the grant; None when another still does."""
    assert row.grant_id is not None
    if await grant_users(session, row.grant_id, besides=row.tenant_id) > 0:
        return None
    grant = await session.get(Grant, row.grant_id, with_for_update=True)
    token = open_refresh_token(host.cipher, grant) if grant is not None else None
    await forget_grant(session, row.grant_id)
    if token is None:
        return None  # nothing left to revoke (already refused, or unreadable: see the logs)
    pending_id = uuid.uuid4().hex
    session.add(
        PendingRevocation(
            id=pending_id,
            tenant_id=row.tenant_id,
            realm_id=row.realm_id or "",
            provider=row.provider,
            token=host.cipher.seal(token, revocation_identity(pending_id)),
            token_identity=None,
            attempts=0,
            last_error="",
            next_attempt_at=datetime.now(UTC),
        )
    )
    return pending_id


async def disconnect_row(
    host: Host, session: AsyncSession, row: Connection
) -> tuple[str | None, Company | None, str]:
    """In the disconnect's transaction, for a connection on a shared grant:
    (pending revocation id, None, "") when it was the last connection of ours on the grant;
    (None, the company to release, grant id) while others still use the grant."""
    grant_id = row.grant_id
    if grant_id is None or row.state not in LIVE_STATES:
        return None, None, ""
    row.grant_id = None
    if await grant_users(session, grant_id, besides=row.tenant_id) == 0:
        row.grant_id = grant_id
        pending = await _queue_grant_revocation(host, session, row)
        row.grant_id = None
        return pending, None, ""
    company = Company(row.realm_id or "", row.company_name, row.platform_connection_id or "")
    return None, company, grant_id


async def release(host: Host, provider: str, grant_id: str, company: Company) -> str:
    """Releases one organisation of a grant other connections still use; "" when done,
    else why not (the disconnect stands either way)."""
    if host.tokens is None or host.tokens.grants is None or not company.connection_id:
        return "the organisation's link could not be removed at the platform"
    platform = host.platforms.platform_for(provider)
    try:
        token, _ = await host.tokens.grants.access_token(grant_id, provider)
        await platform.release_company(company, token)
    except (DomainError, OAuthError, OAuthUnavailable) as exc:
        return f"{platform.display_name} did not confirm the disconnect: {exc}"[:500]
    except Exception as exc:
        if platform.classify_error(exc) is None:
            raise
        return f"{platform.display_name} did not confirm the disconnect: {exc}"[:500]
    return ""
