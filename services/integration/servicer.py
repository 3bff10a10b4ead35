"""IntegrationService. Connection lifecycle (issue 4), sync (issue 5) and webhooks
(issue 6) land in later issues; until then those RPCs answer UNIMPLEMENTED saying when."""

from __future__ import annotations

from typing import Any, NoReturn

import grpc

from aicollect.errors import NotImplementedYet
from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _later(rpc: str, issue: int) -> NoReturn:
    raise NotImplementedYet(f"{rpc} is not implemented yet (planned in issue {issue})")


class IntegrationServicer(pb_grpc.IntegrationServiceServicer):
    async def CreateConnectUrl(
        self, request: pb.CreateConnectUrlRequest, context: Context
    ) -> pb.CreateConnectUrlResponse:
        _later("CreateConnectUrl", 4)

    async def CompleteConnection(
        self, request: pb.CompleteConnectionRequest, context: Context
    ) -> pb.CompleteConnectionResponse:
        _later("CompleteConnection", 4)

    async def Disconnect(
        self, request: pb.DisconnectRequest, context: Context
    ) -> pb.DisconnectResponse:
        _later("Disconnect", 4)

    async def GetConnectionStatus(
        self, request: pb.GetConnectionStatusRequest, context: Context
    ) -> pb.GetConnectionStatusResponse:
        _later("GetConnectionStatus", 4)

    async def IngestWebhook(
        self, request: pb.IngestWebhookRequest, context: Context
    ) -> pb.IngestWebhookResponse:
        _later("IngestWebhook", 6)

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
