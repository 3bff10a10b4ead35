"""Both gRPC servers: reflection, health, bearer-token auth, error mapping, graceful stop."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from aicollect.integration.v1 import admin_service_pb2 as apb
from aicollect.integration.v1 import admin_service_pb2_grpc as agrpc
from aicollect.integration.v1 import integration_service_pb2 as ipb
from aicollect.integration.v1 import integration_service_pb2_grpc as igrpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mgrpc
from aicollect.rpc.client import internal_channel
from aicollect.rpc.errors import error_info
from tests.conftest import INTERNAL_TOKEN


def _list_services(address: str) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


async def test_reflection_lists_services_without_a_token(
    integration_addr: str, matcher_addr: str
) -> None:
    integration = await asyncio.to_thread(_list_services, integration_addr)
    assert {
        "aicollect.integration.v1.IntegrationService",
        "aicollect.integration.v1.AdminService",
        "grpc.health.v1.Health",
    } <= set(integration)
    matcher = await asyncio.to_thread(_list_services, matcher_addr)
    assert {"aicollect.matching.v1.MatchingService", "grpc.health.v1.Health"} <= set(matcher)


async def test_health_is_open_and_serving(integration_addr: str) -> None:
    async with grpc.aio.insecure_channel(integration_addr) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "aicollect.integration.v1.AdminService"):
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize(
    "metadata", [(), (("authorization", "Bearer wrong"),), (("authorization", INTERNAL_TOKEN),)]
)
async def test_call_without_valid_token_is_unauthenticated(
    integration_addr: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    async with grpc.aio.insecure_channel(integration_addr) as channel:
        stub = agrpc.AdminServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetPlatformSettings(apb.GetPlatformSettingsRequest(), metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert INTERNAL_TOKEN not in (info.value.details() or "")


async def test_unauthenticated_stream_call_is_refused(matcher_addr: str) -> None:
    async with grpc.aio.insecure_channel(matcher_addr) as channel:
        call = mgrpc.MatchingServiceStub(channel).StreamOutreachEvents(
            mpb.StreamOutreachEventsRequest()
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_an_rpc_without_implementation_answers_unimplemented() -> None:
    """The generated base servicer raises NotImplementedError; the interceptor maps it."""
    from aicollect.rpc.server import create_server

    def register(server: grpc.aio.Server) -> None:
        igrpc.add_IntegrationServiceServicer_to_server(
            igrpc.IntegrationServiceServicer(),  # type: ignore[abstract]
            server,
        )
        mgrpc.add_MatchingServiceServicer_to_server(
            mgrpc.MatchingServiceServicer(),  # type: ignore[abstract]
            server,
        )

    bare = create_server(register, (), address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
    await bare.start()
    try:
        async with internal_channel(f"127.0.0.1:{bare.port}", INTERNAL_TOKEN) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await igrpc.IntegrationServiceStub(channel).SyncNow(
                    ipb.SyncNowRequest(tenant_id="t")
                )
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
            stream = mgrpc.MatchingServiceStub(channel).StreamOutreachEvents(
                mpb.StreamOutreachEventsRequest()
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stream.read()
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await bare.stop(None)


async def test_domain_error_carries_error_info(integration_channel: grpc.aio.Channel) -> None:
    stub = agrpc.AdminServiceStub(integration_channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.SetTenantSettings(
            apb.SetTenantSettingsRequest(tenant_id="t1", qbo_enabled=True, actor="", reason="x")
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "actor is required" in (info.value.details() or "")
    detail = error_info(info.value)
    assert detail is not None
    assert detail.reason == "FIELD_INVALID"
    assert detail.metadata["field"] == "actor"
