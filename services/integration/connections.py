"""The connection lifecycle, one service: connect URL and OAuth callback
(``consent.py``), disconnect and token revocation (``disconnect.py``), Disconnect URL
reports (``disconnect_url.py``), and the connection's status (here). What they share is in
``connection_base.py``; grants shared by several companies (Xero) in ``shared_grants.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from aicollect.provider import Provider
from services.integration import admin
from services.integration.consent import ConsentFlow
from services.integration.disconnect_url import DisconnectUrlReports
from services.integration.models import Connection, PendingRevocation
from services.integration.states import CONNECTED, NOT_CONNECTED, TOKENS_UNREADABLE
from services.integration.tokens import unreadable_tokens


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


class ConnectionService(ConsentFlow, DisconnectUrlReports):
    """A tenant's connection to an accounting platform: connect, disconnect, reports from
    the provider's side, status."""

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
