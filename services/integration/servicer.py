"""IntegrationService: converts protos to the domain calls and back, nothing more.

Sync (issue 5) and webhooks (issue 6) land in later issues; until then those RPCs answer
UNIMPLEMENTED saying when."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from aicollect.errors import NotImplementedYet
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as pb_grpc
from aicollect.rpc.convert import timestamp
from services.integration import inbox
from services.integration.deps import IntegrationDeps

Context = grpc.aio.ServicerContext[Any, Any]


def _later(rpc: str, issue: int) -> NoReturn:
    raise NotImplementedYet(f"{rpc} is not implemented yet (planned in issue {issue})")


STATE = {
    "not_connected": pb.CONNECTION_STATE_NOT_CONNECTED,
    "connected": pb.CONNECTION_STATE_CONNECTED,
    "needs_reauthorization": pb.CONNECTION_STATE_NEEDS_REAUTHORIZATION,
    "disconnected": pb.CONNECTION_STATE_DISCONNECTED,
}
ORIGIN = {"user": pb.DISCONNECT_ORIGIN_USER, "intuit": pb.DISCONNECT_ORIGIN_INTUIT}
REVOCATION = {
    "revoked": pb.TOKEN_REVOCATION_REVOKED,
    "pending_retry": pb.TOKEN_REVOCATION_PENDING_RETRY,
    "not_needed": pb.TOKEN_REVOCATION_NOT_NEEDED,
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
}


class IntegrationServicer(pb_grpc.IntegrationServiceServicer):
    def __init__(self, deps: IntegrationDeps) -> None:
        self._deps = deps

    async def CreateConnectUrl(
        self, request: pb.CreateConnectUrlRequest, context: Context
    ) -> pb.CreateConnectUrlResponse:
        url, expires = await self._deps.connections.create_connect_url(
            request.tenant_id, request.actor
        )
        return pb.CreateConnectUrlResponse(authorize_url=url, state_expire_time=timestamp(expires))

    async def CompleteConnection(
        self, request: pb.CompleteConnectionRequest, context: Context
    ) -> pb.CompleteConnectionResponse:
        outcome = await self._deps.connections.complete_connection(
            state=request.state,
            code=request.code,
            realm_id=request.realm_id,
            error=request.error,
            error_description=request.error_description,
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
        outcome = await self._deps.connections.disconnect(
            request.tenant_id, request.actor, request.reason
        )
        return pb.DisconnectResponse(
            state=STATE[outcome.state],
            disconnect_time=timestamp(outcome.disconnect_time),
            token_revocation=REVOCATION[outcome.revocation],
            revocation_detail=outcome.detail,
        )

    async def GetConnectionStatus(
        self, request: pb.GetConnectionStatusRequest, context: Context
    ) -> pb.GetConnectionStatusResponse:
        view = await self._deps.connections.status(request.tenant_id)
        return pb.GetConnectionStatusResponse(
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
            backfill=pb.BackfillProgress(phase=pb.BACKFILL_PHASE_NOT_STARTED),
            sync=await self._sync_health(view.tenant_id),
        )

    async def _sync_health(self, tenant_id: str) -> pb.SyncHealth:
        async with self._deps.sessions() as session:
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
        settings = self._deps.settings
        tokens = [
            secret.get_secret_value()
            for secret in (
                settings.qbo_webhook_verifier_token,
                settings.qbo_webhook_verifier_token_previous,
            )
            if secret is not None
        ]
        result = await inbox.ingest(self._deps.sessions, request.body, request.signature, tokens)
        return pb.IngestWebhookResponse(
            stored_event_count=result.stored,
            duplicate_event_count=result.duplicates,
            dropped_event_count=result.dropped,
        )

    async def SyncNow(self, request: pb.SyncNowRequest, context: Context) -> pb.SyncNowResponse:
        _later("SyncNow", 5)

    async def PreviewPlacements(
        self, request: pb.PreviewPlacementsRequest, context: Context
    ) -> pb.PreviewPlacementsResponse:
        _later("PreviewPlacements", 5)

    async def GetPlacementRules(
        self, request: pb.GetPlacementRulesRequest, context: Context
    ) -> pb.GetPlacementRulesResponse:
        _later("GetPlacementRules", 5)

    async def SetPlacementRules(
        self, request: pb.SetPlacementRulesRequest, context: Context
    ) -> pb.SetPlacementRulesResponse:
        _later("SetPlacementRules", 5)
