"""IntegrationService: converts protos to the domain calls and back, nothing more."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from aicollect.errors import InvalidArgument
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as pb_grpc
from aicollect.provider import from_pb as provider_of
from aicollect.rpc.convert import timestamp
from services.integration import disconnect_url, inbox, outreach, states
from services.integration.connections import ConnectionService
from services.integration.inbox import InboxWriter
from services.integration.providers import PlatformRegistry
from services.integration.sync import candidate_review, confirm, preview, rules, service
from services.integration.sync import convert as sync_pb
from services.integration.sync.context import SyncDeps

Context = grpc.aio.ServicerContext[Any, Any]


STATE = {
    states.NOT_CONNECTED: pb.CONNECTION_STATE_NOT_CONNECTED,
    states.CONNECTED: pb.CONNECTION_STATE_CONNECTED,
    states.NEEDS_REAUTHORIZATION: pb.CONNECTION_STATE_NEEDS_REAUTHORIZATION,
    states.DISCONNECTED: pb.CONNECTION_STATE_DISCONNECTED,
    states.TOKENS_UNREADABLE: pb.CONNECTION_STATE_TOKENS_UNREADABLE,
}
ORIGIN = {"user": pb.DISCONNECT_ORIGIN_USER, "intuit": pb.DISCONNECT_ORIGIN_INTUIT}
REVOCATION = {
    "revoked": pb.TOKEN_REVOCATION_REVOKED,
    "pending_retry": pb.TOKEN_REVOCATION_PENDING_RETRY,
    "not_needed": pb.TOKEN_REVOCATION_NOT_NEEDED,
}
REPORT_OUTCOME = {
    disconnect_url.REPORT_DISCONNECTED: pb.PROVIDER_DISCONNECT_OUTCOME_DISCONNECTED,
    disconnect_url.REPORT_ALREADY_DISCONNECTED: pb.PROVIDER_DISCONNECT_OUTCOME_ALREADY_DISCONNECTED,
    disconnect_url.REPORT_NOT_CONFIRMED: pb.PROVIDER_DISCONNECT_OUTCOME_NOT_CONFIRMED,
    disconnect_url.REPORT_UNKNOWN_COMPANY: pb.PROVIDER_DISCONNECT_OUTCOME_UNKNOWN_COMPANY,
    disconnect_url.REPORT_UNCONFIRMED: pb.PROVIDER_DISCONNECT_OUTCOME_UNCONFIRMED,
}
CONNECT_ERROR = {
    "invalid_state": pb.CONNECT_ERROR_REASON_INVALID_STATE,
    "expired_state": pb.CONNECT_ERROR_REASON_EXPIRED_STATE,
    "state_already_used": pb.CONNECT_ERROR_REASON_STATE_ALREADY_USED,
    "access_denied": pb.CONNECT_ERROR_REASON_ACCESS_DENIED,
    "authorization_error": pb.CONNECT_ERROR_REASON_AUTHORIZATION_ERROR,
    "missing_realm": pb.CONNECT_ERROR_REASON_MISSING_REALM,
    "code_exchange_failed": pb.CONNECT_ERROR_REASON_CODE_EXCHANGE_FAILED,
    "realm_in_use": pb.CONNECT_ERROR_REASON_REALM_IN_USE,
    "integration_disabled": pb.CONNECT_ERROR_REASON_INTEGRATION_DISABLED,
    "internal_error": pb.CONNECT_ERROR_REASON_INTERNAL_ERROR,
    "browser_mismatch": pb.CONNECT_ERROR_REASON_BROWSER_MISMATCH,
    "realm_mismatch": pb.CONNECT_ERROR_REASON_REALM_MISMATCH,
    "unavailable": pb.CONNECT_ERROR_REASON_UNAVAILABLE,
    "several_organisations": pb.CONNECT_ERROR_REASON_SEVERAL_ORGANISATIONS,
}


class IntegrationServicer(pb_grpc.IntegrationServiceServicer):
    def __init__(
        self,
        connections: ConnectionService,
        sync: SyncDeps,
        inbox_writer: InboxWriter,
        platforms: PlatformRegistry,
        syncs: Mapping[str, SyncDeps] | None = None,
    ) -> None:
        self._connections = connections
        self._sync = sync
        self._syncs = dict(syncs or {})
        self._sessions = sync.sessions
        self._inbox_writer = inbox_writer
        self._platforms = platforms

    def _sync_for(self, value: int) -> SyncDeps:
        """The sync of the request's platform (the default one when it runs only that)."""
        return self._syncs.get(provider_of(value).value, self._sync)

    async def CreateConnectUrl(
        self, request: pb.CreateConnectUrlRequest, context: Context
    ) -> pb.CreateConnectUrlResponse:
        link = await self._connections.create_connect_url(
            request.tenant_id, request.actor, provider_of(request.provider)
        )
        return pb.CreateConnectUrlResponse(
            authorize_url=link.authorize_url,
            state_expire_time=timestamp(link.expires_at),
            browser_binding=link.browser_binding,
        )

    async def CompleteConnection(
        self, request: pb.CompleteConnectionRequest, context: Context
    ) -> pb.CompleteConnectionResponse:
        outcome = await self._connections.complete_connection(
            state=request.state,
            code=request.code,
            realm_id=request.realm_id,
            error=request.error,
            error_description=request.error_description,
            browser_binding=request.browser_binding,
            provider=provider_of(request.provider),
        )
        return pb.CompleteConnectionResponse(
            redirect_url=outcome.redirect_url,
            connected=outcome.connected,
            error_reason=CONNECT_ERROR.get(outcome.error_code, 0),  # type: ignore[arg-type]
            error_code=outcome.error_code,
            tenant_id=outcome.tenant_id,
            realm_id=outcome.realm_id,
            company_name=outcome.company_name,
        )

    async def Disconnect(
        self, request: pb.DisconnectRequest, context: Context
    ) -> pb.DisconnectResponse:
        if request.stop_all_outreach:
            outreach.pause_words(request.actor, request.reason)  # bad input changes nothing
        outcome = await self._connections.disconnect(
            request.tenant_id, request.actor, request.reason, provider_of(request.provider)
        )
        pause_id = ""
        if request.stop_all_outreach:
            pause_id = await outreach.stop_all_outreach(
                self._sync.matching, request.tenant_id.strip(), request.actor, request.reason
            )
        return pb.DisconnectResponse(
            state=STATE[outcome.state],
            disconnect_time=timestamp(outcome.disconnect_time),
            token_revocation=REVOCATION[outcome.revocation],
            revocation_detail=outcome.detail,
            outreach_pause_id=pause_id,
        )

    async def ReportProviderDisconnect(
        self, request: pb.ReportProviderDisconnectRequest, context: Context
    ) -> pb.ReportProviderDisconnectResponse:
        report = await self._connections.report_provider_disconnect(
            provider_of(request.provider), request.realm_id
        )
        return pb.ReportProviderDisconnectResponse(
            redirect_url=report.redirect_url, outcome=REPORT_OUTCOME[report.outcome]
        )

    async def GetConnectionStatus(
        self, request: pb.GetConnectionStatusRequest, context: Context
    ) -> pb.GetConnectionStatusResponse:
        view = await self._connections.status(request.tenant_id, provider_of(request.provider))
        progress = await service.progress(self._sync, view.tenant_id, view.realm_id)
        reply = pb.GetConnectionStatusResponse(
            tenant_id=view.tenant_id,
            state=STATE[view.state],
            state_detail=view.state_detail,
            realm_id=view.realm_id,
            company_name=view.company_name,
            connect_time=timestamp(view.connect_time),
            disconnect_time=timestamp(view.disconnect_time),
            disconnect_origin=ORIGIN.get(view.disconnect_origin or "", 0),  # type: ignore[arg-type]
            refresh_token_expire_time=timestamp(view.refresh_token_expire_time),
            qbo_enabled=view.qbo_enabled,
            qbo_kill_switch=view.qbo_kill_switch,
            provider=view.provider.to_pb(),
            enabled=view.enabled,
            kill_switch=view.kill_switch,
            backfill=sync_pb.backfill_pb(progress.backfill),
            sync=await self._sync_health(view.tenant_id),
            pending_revocations=[
                pb.PendingTokenRevocation(
                    realm_id=p.realm_id,
                    attempts=p.attempts,
                    last_error=p.last_error,
                    next_attempt_time=timestamp(p.next_attempt_at),
                    create_time=timestamp(p.created_at),
                )
                for p in view.pending_revocations
            ],
        )
        if progress.last_cdc_poll_time is not None:
            reply.sync.last_cdc_poll_time.FromDatetime(progress.last_cdc_poll_time)
        return reply

    async def _sync_health(self, tenant_id: str) -> pb.SyncHealth:
        async with self._sessions() as session:
            stats = await inbox.stats(session, tenant_id)
        health = pb.SyncHealth(
            last_webhook_time=timestamp(stats.last_received),
            inbox_backlog_count=stats.backlog,
            dead_letter_count=stats.dead_letters,
        )
        if stats.oldest_pending_age is not None:
            health.oldest_pending_age.FromTimedelta(stats.oldest_pending_age)
        return health

    async def IngestWebhook(
        self, request: pb.IngestWebhookRequest, context: Context
    ) -> pb.IngestWebhookResponse:
        # The route names the platform (/v1/webhooks/{provider}); an unsupported one is
        # refused before anything is read.
        platform = self._platforms.platform_for(provider_of(request.provider).value)
        result = await inbox.ingest(
            self._inbox_writer, platform, request.body, request.signature, platform.name
        )
        return pb.IngestWebhookResponse(
            stored_event_count=result.stored,
            duplicate_event_count=result.duplicates,
            dropped_event_count=result.dropped,
        )

    async def SyncNow(self, request: pb.SyncNowRequest, context: Context) -> pb.SyncNowResponse:
        started, progress = await service.sync_now(
            self._sync_for(request.provider),
            request.tenant_id,
            sync_pb.sync_mode(request.mode),
            request.actor,
            provider_of(request.provider),
        )
        return pb.SyncNowResponse(started=started, backfill=sync_pb.backfill_pb(progress.backfill))

    async def PreviewPlacements(
        self, request: pb.PreviewPlacementsRequest, context: Context
    ) -> pb.PreviewPlacementsResponse:
        provider = provider_of(request.provider)
        override = (
            rules.rules_from_pb(request.rules_override, "rules_override")
            if request.HasField("rules_override")
            else None
        )
        page = await preview.preview(
            self._sync_for(request.provider),
            request.tenant_id,
            override,
            request.page_size,
            request.page_token,
            provider,
        )
        return sync_pb.preview_reply(page)

    async def GetPlacementRules(
        self, request: pb.GetPlacementRulesRequest, context: Context
    ) -> pb.GetPlacementRulesResponse:
        provider_of(request.provider)  # the rules are the tenant's, whatever its platform
        async with self._sessions() as session:
            stored = await rules.get_rules(session, request.tenant_id)
        return sync_pb.rules_reply(stored)

    async def SetPlacementRules(
        self, request: pb.SetPlacementRulesRequest, context: Context
    ) -> pb.SetPlacementRulesResponse:
        provider_of(request.provider)  # the rules are the tenant's, whatever its platform
        if not request.HasField("rules"):
            raise InvalidArgument("rules is required", field="rules")
        new_rules = rules.rules_from_pb(request.rules)
        async with self._sessions.begin() as session:
            stored = await rules.set_rules(
                session,
                request.tenant_id,
                new_rules,
                expected_version=request.expected_version,
                actor=request.actor,
                reason=request.reason,
            )
        return pb.SetPlacementRulesResponse(
            rules=stored.rules.to_pb(),
            version=stored.version,
            update_time=timestamp(stored.update_time),
        )

    async def ListPlacementCandidates(
        self, request: pb.ListPlacementCandidatesRequest, context: Context
    ) -> pb.ListPlacementCandidatesResponse:
        page = await candidate_review.list_candidates(
            self._sync_for(request.provider),
            request.tenant_id,
            provider_of(request.provider),
            sync_pb.candidate_statuses(request.statuses),
            request.page_size,
            request.page_token,
        )
        return sync_pb.candidates_reply(page)

    async def ExcludePlacementCandidate(
        self, request: pb.ExcludePlacementCandidateRequest, context: Context
    ) -> pb.ExcludePlacementCandidateResponse:
        candidate = await candidate_review.set_excluded(
            self._sync_for(request.provider),
            request.tenant_id,
            provider_of(request.provider),
            request.invoice_id,
            exclude=True,
            actor=request.actor,
            reason=request.reason,
        )
        return pb.ExcludePlacementCandidateResponse(candidate=sync_pb.candidate_pb(candidate))

    async def IncludePlacementCandidate(
        self, request: pb.IncludePlacementCandidateRequest, context: Context
    ) -> pb.IncludePlacementCandidateResponse:
        candidate = await candidate_review.set_excluded(
            self._sync_for(request.provider),
            request.tenant_id,
            provider_of(request.provider),
            request.invoice_id,
            exclude=False,
            actor=request.actor,
            reason=request.reason,
        )
        return pb.IncludePlacementCandidateResponse(candidate=sync_pb.candidate_pb(candidate))

    async def ConfirmPlacementCandidates(
        self, request: pb.ConfirmPlacementCandidatesRequest, context: Context
    ) -> pb.ConfirmPlacementCandidatesResponse:
        if request.future_mode == pb.PLACEMENT_INTAKE_MODE_PREVIEW:
            raise InvalidArgument(
                "future_mode PREVIEW cannot be chosen; give AUTOMATIC or CONFIRM_EACH_TIME",
                field="future_mode",
            )
        result = await confirm.confirm(
            self._sync_for(request.provider),
            request.tenant_id,
            provider_of(request.provider),
            actor=request.actor,
            reason=request.reason,
            future_mode=sync_pb.future_mode(request.future_mode),
        )
        return pb.ConfirmPlacementCandidatesResponse(
            placed_count=result.placed,
            dropped_count=result.dropped,
            excluded_count=result.excluded,
            mode=sync_pb.MODES[result.mode],
            confirmation=sync_pb.confirmation_pb(result.confirmation),
        )
