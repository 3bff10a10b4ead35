"""Disconnected on the provider's side: the browser landing on the Disconnect URL.

The landing is a GET anyone can forge, so it is only a report: a connection becomes
disconnected (origin ``intuit``) once the provider confirms its grant is gone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from aicollect.errors import FailedPrecondition, NotFound, Unavailable
from aicollect.provider import Provider
from aicollect.urls import with_query
from services.integration.connection_base import MAX_PARAM, ConnectionBase, mark_disconnected
from services.integration.models import AuditEvent, Connection
from services.integration.states import CONNECTED, LIVE_STATES, NEEDS_REAUTHORIZATION
from services.integration.tokens import AccessToken, ReauthorizationRequired

log = logging.getLogger(__name__)

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


class DisconnectUrlReports(ConnectionBase):
    """Disconnect URL reports (a part of ``ConnectionService``)."""

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
            mark_disconnected(
                session,
                row,
                "intuit",
                f"disconnected in {provider.label} (the app was removed on {provider.label}'s "
                "side); connect again to resume syncing",
                REPORT_ACTOR,
                f"disconnected on {provider.label}'s side; Intuit refused the grant",
            )
        return True
