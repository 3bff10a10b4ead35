"""Builds the matcher's gRPC server (used by ``__main__`` and by the tests)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.matching.v1 import matching_admin_service_pb2, matching_service_pb2
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as admin_grpc
from aicollect.matching.v1 import matching_service_pb2_grpc as matching_grpc
from aicollect.rpc.server import GrpcServer, create_server
from services.matcher.admin_servicer import MatchingAdminServicer
from services.matcher.daily_reports import utc_now
from services.matcher.metrics import MatcherMetrics
from services.matcher.servicer import MatchingServicer

SERVICE_NAMES = (
    matching_service_pb2.DESCRIPTOR.services_by_name["MatchingService"].full_name,
    matching_admin_service_pb2.DESCRIPTOR.services_by_name["MatchingAdminService"].full_name,
)


def build_server(
    sessions: async_sessionmaker[AsyncSession],
    *,
    address: str,
    internal_token: str,
    metrics: MatcherMetrics | None = None,
    report_default_zone: str = "UTC",
    clock: Callable[[], datetime] = utc_now,
) -> GrpcServer:
    """``clock`` is what time it is for the daily reports (tests move it)."""

    def register(server: grpc.aio.Server) -> None:
        matching_grpc.add_MatchingServiceServicer_to_server(
            MatchingServicer(sessions, metrics=metrics), server
        )
        admin_grpc.add_MatchingAdminServiceServicer_to_server(
            MatchingAdminServicer(
                sessions, report_default_zone=report_default_zone, metrics=metrics, clock=clock
            ),
            server,
        )

    return create_server(register, SERVICE_NAMES, address=address, internal_token=internal_token)
