"""Builds the integration service's gRPC server (used by ``__main__`` and by the tests)."""

from __future__ import annotations

import grpc

from aicollect.integration.v1 import admin_service_pb2, integration_service_pb2
from aicollect.integration.v1 import admin_service_pb2_grpc as admin_grpc
from aicollect.integration.v1 import integration_service_pb2_grpc as integration_grpc
from aicollect.rpc.server import GrpcServer, create_server
from services.integration.admin_servicer import AdminServicer
from services.integration.deps import IntegrationDeps
from services.integration.servicer import IntegrationServicer

SERVICE_NAMES = (
    integration_service_pb2.DESCRIPTOR.services_by_name["IntegrationService"].full_name,
    admin_service_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
)


def build_server(
    deps: IntegrationDeps,
    *,
    address: str,
    internal_token: str,
) -> GrpcServer:
    def register(server: grpc.aio.Server) -> None:
        integration_grpc.add_IntegrationServiceServicer_to_server(
            IntegrationServicer(
                deps.connections, deps.sync, deps.inbox_writer, deps.platforms, deps.syncs
            ),
            server,
        )
        admin_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(deps.sessions, deps.matching_admin, deps.platforms),
            server,
        )

    return create_server(register, SERVICE_NAMES, address=address, internal_token=internal_token)
