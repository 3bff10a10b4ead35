"""MatchingService. Placement intake (issue 5) and matching, restore, the outreach stream
and reports (issue 6) land in later issues; until then they answer UNIMPLEMENTED."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, NoReturn

import grpc

from aicollect.errors import NotImplementedYet
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]


def _later(rpc: str, issue: int) -> NoReturn:
    raise NotImplementedYet(f"{rpc} is not implemented yet (planned in issue {issue})")


class MatchingServicer(pb_grpc.MatchingServiceServicer):
    async def UpsertPlacements(
        self, request: pb.UpsertPlacementsRequest, context: Context
    ) -> pb.UpsertPlacementsResponse:
        _later("UpsertPlacements", 5)

    async def ApplyAccountingPayment(
        self, request: pb.ApplyAccountingPaymentRequest, context: Context
    ) -> pb.ApplyAccountingPaymentResponse:
        _later("ApplyAccountingPayment", 6)

    async def ApplyAccountingInvoice(
        self, request: pb.ApplyAccountingInvoiceRequest, context: Context
    ) -> pb.ApplyAccountingInvoiceResponse:
        _later("ApplyAccountingInvoice", 5)

    async def RecordPortalPayment(
        self, request: pb.RecordPortalPaymentRequest, context: Context
    ) -> pb.RecordPortalPaymentResponse:
        _later("RecordPortalPayment", 6)

    async def GetPlacement(
        self, request: pb.GetPlacementRequest, context: Context
    ) -> pb.GetPlacementResponse:
        _later("GetPlacement", 6)

    async def ListPlacements(
        self, request: pb.ListPlacementsRequest, context: Context
    ) -> pb.ListPlacementsResponse:
        _later("ListPlacements", 6)

    async def RestorePlacement(
        self, request: pb.RestorePlacementRequest, context: Context
    ) -> pb.RestorePlacementResponse:
        _later("RestorePlacement", 6)

    async def StreamOutreachEvents(
        self, request: pb.StreamOutreachEventsRequest, context: Context
    ) -> AsyncIterator[pb.StreamOutreachEventsResponse]:
        _later("StreamOutreachEvents", 6)
        yield pb.StreamOutreachEventsResponse()  # pragma: no cover - makes this a generator

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Context
    ) -> pb.ListAuditEventsResponse:
        _later("ListAuditEvents", 6)

    async def GetReconciliationReport(
        self, request: pb.GetReconciliationReportRequest, context: Context
    ) -> pb.GetReconciliationReportResponse:
        _later("GetReconciliationReport", 6)
