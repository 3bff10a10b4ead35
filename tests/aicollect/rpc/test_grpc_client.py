"""The internal channel balances over every address, retries only idempotent calls on
UNAVAILABLE, and keeps idle streams alive without the server refusing its pings."""

from __future__ import annotations

from collections import Counter
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aicollect.matching.v1 import matching_admin_service_pb2 as apb
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as agrpc
from aicollect.rpc.client import IDEMPOTENT_METHODS, internal_channel
from aicollect.rpc.server import GrpcServer, create_server
from tests.conftest import INTERNAL_TOKEN


class FlakyMatchingAdmin(agrpc.MatchingAdminServiceServicer):
    """Answers UNAVAILABLE to the first ``failures`` calls of each method, then succeeds."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: Counter[str] = Counter()

    async def _answer(self, method: str, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        self.calls[method] += 1
        if self.calls[method] <= self.failures:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "backend restarting")

    async def GetMatchingSettings(
        self, request: apb.GetMatchingSettingsRequest, context: Any
    ) -> apb.GetMatchingSettingsResponse:
        await self._answer("GetMatchingSettings", context)
        return apb.GetMatchingSettingsResponse()

    async def UpdateMatchingSettings(
        self, request: apb.UpdateMatchingSettingsRequest, context: Any
    ) -> apb.UpdateMatchingSettingsResponse:
        await self._answer("UpdateMatchingSettings", context)
        return apb.UpdateMatchingSettingsResponse()

    async def GetTenantReportSettings(
        self, request: apb.GetTenantReportSettingsRequest, context: Any
    ) -> apb.GetTenantReportSettingsResponse:
        await self._answer("GetTenantReportSettings", context)
        return apb.GetTenantReportSettingsResponse()

    async def UpdateTenantReportSettings(
        self, request: apb.UpdateTenantReportSettingsRequest, context: Any
    ) -> apb.UpdateTenantReportSettingsResponse:
        await self._answer("UpdateTenantReportSettings", context)
        return apb.UpdateTenantReportSettingsResponse()

    async def RegenerateDailyReport(
        self, request: apb.RegenerateDailyReportRequest, context: Any
    ) -> apb.RegenerateDailyReportResponse:
        await self._answer("RegenerateDailyReport", context)
        return apb.RegenerateDailyReportResponse()


async def _server(marker: str, servicer: FlakyMatchingAdmin | None = None) -> GrpcServer:
    def register(server: grpc.aio.Server) -> None:
        if servicer is not None:
            agrpc.add_MatchingAdminServiceServicer_to_server(servicer, server)

    server = create_server(register, (), address="127.0.0.1:0", internal_token=INTERNAL_TOKEN)
    await server.start()
    # Only this server knows the service name `marker`: its answer says who served a call.
    await server.health.set(marker, health_pb2.HealthCheckResponse.SERVING)
    return server


async def _knows(channel: grpc.aio.Channel, marker: str) -> bool:
    """True when the server that took this call is the one registered as ``marker``."""
    try:
        await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=marker), timeout=5
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False
    return True


async def test_calls_are_spread_over_every_address() -> None:
    a, b = await _server("backend-a"), await _server("backend-b")
    try:
        target = f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}"
        async with internal_channel(target, INTERNAL_TOKEN) as channel:
            seen: Counter[str] = Counter()
            for _ in range(40):
                seen["a" if await _knows(channel, "backend-a") else "b"] += 1
        # Round robin: both backends take a fair part, not the first address only.
        assert seen["a"] >= 10, seen
        assert seen["b"] >= 10, seen
    finally:
        await a.stop(None)
        await b.stop(None)


async def test_a_stopped_backend_is_skipped() -> None:
    a, b = await _server("backend-a"), await _server("backend-b")
    target = f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}"
    try:
        async with internal_channel(target, INTERNAL_TOKEN) as channel:
            for _ in range(4):  # both addresses connected and in rotation
                await _knows(channel, "backend-b")
            await a.stop(None)
            answers = [await _knows(channel, "backend-b") for _ in range(10)]
            assert all(answers), answers
    finally:
        await b.stop(None)


async def test_idempotent_calls_are_retried_on_unavailable() -> None:
    servicer = FlakyMatchingAdmin(failures=2)
    server = await _server("flaky", servicer)
    try:
        async with internal_channel(f"127.0.0.1:{server.port}", INTERNAL_TOKEN) as channel:
            stub = agrpc.MatchingAdminServiceStub(channel)
            await stub.GetMatchingSettings(apb.GetMatchingSettingsRequest(), timeout=10)
            assert servicer.calls["GetMatchingSettings"] == 3  # two failures, then success
    finally:
        await server.stop(None)


async def test_changes_are_never_retried_behind_the_callers_back() -> None:
    servicer = FlakyMatchingAdmin(failures=1)
    server = await _server("flaky", servicer)
    try:
        async with internal_channel(f"127.0.0.1:{server.port}", INTERNAL_TOKEN) as channel:
            stub = agrpc.MatchingAdminServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.UpdateMatchingSettings(apb.UpdateMatchingSettingsRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert servicer.calls["UpdateMatchingSettings"] == 1
    finally:
        await server.stop(None)


def test_every_named_idempotent_method_exists() -> None:
    """A renamed RPC must not silently lose its retry policy."""
    from aicollect.integration.v1 import admin_service_pb2, integration_service_pb2
    from aicollect.matching.v1 import matching_admin_service_pb2, matching_service_pb2

    services = {}
    for module in (
        admin_service_pb2,
        integration_service_pb2,
        matching_admin_service_pb2,
        matching_service_pb2,
    ):
        for service in module.DESCRIPTOR.services_by_name.values():
            services[service.full_name] = {m.name for m in service.methods}
    for service_name, methods in IDEMPOTENT_METHODS.items():
        assert service_name in services
        assert set(methods) <= services[service_name], service_name
