"""What every part of the connection lifecycle shares: the connection service's dependencies
(``ConnectionBase``, which ``ConnectionService`` is built on) and marking a connection
disconnected.

Secrets handled by the lifecycle (the ``state``, the browser binding, the authorization
code, tokens) never reach a log line, an error message or a reply: states and bindings are
stored as SHA-256, tokens sealed. The browser binding is the one exception to "never in a
reply": it goes back to the caller of CreateConnectUrl once, which hands it to the
consenting browser.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.crypto import TokenCipher
from services.integration.budget import RealmBudget
from services.integration.models import AuditEvent, Connection
from services.integration.providers import PlatformRegistry
from services.integration.providers.base import AccountingPlatform
from services.integration.states import DISCONNECTED
from services.integration.tokens import TokenManager

MAX_PARAM = 2048


def mark_disconnected(
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
class ConnectionBase:
    """The connection service's dependencies; its parts (consent, disconnect and revocation,
    Disconnect URL reports, status) are subclasses that ``ConnectionService`` combines."""

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
