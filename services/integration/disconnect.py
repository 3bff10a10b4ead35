"""Disconnecting a connection from the dashboard, and revoking its grant at the provider:
tokens move to a revocation queue in the disconnect's transaction, are revoked now when
the provider answers, and by the background retrier (``retry_due_revocations``) when not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.crypto import DecryptError
from aicollect.db.settings_store import check_text
from aicollect.errors import NotFound
from aicollect.provider import Provider
from services.integration import admin, shared_grants
from services.integration.connection_base import ConnectionBase, mark_disconnected
from services.integration.models import AuditEvent, Connection, PendingRevocation
from services.integration.providers.base import Company, InvalidGrant, OAuthError, OAuthUnavailable
from services.integration.states import CONNECTED, DISCONNECTED
from services.integration.tokens import (
    REVOKE_REMEDY,
    revocation_identity,
    token_identity,
    unreadable,
)

log = logging.getLogger(__name__)

REVOKE_ATTEMPTS = 3
REVOKE_BACKOFF_S = 0.2


@dataclass(frozen=True)
class DisconnectOutcome:
    state: str
    disconnect_time: datetime | None
    revocation: str  # "revoked" | "pending_retry" | "not_needed"
    detail: str = ""


class Revocations(ConnectionBase):
    """Disconnect and token revocation (a part of ``ConnectionService``)."""

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
            disconnected_at = mark_disconnected(
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
