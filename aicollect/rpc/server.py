"""gRPC server bootstrap shared by the integration and matcher processes."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import _async as health_aio  # the grpc.aio health servicer
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aicollect.rpc.interceptors import BearerTokenInterceptor, ErrorMappingInterceptor

log = logging.getLogger(__name__)


@dataclass
class GrpcServer:
    """A built (not yet started) server with its bound port and health servicer."""

    server: grpc.aio.Server
    port: int
    health: health_aio.HealthServicer
    service_names: tuple[str, ...]

    async def start(self) -> None:
        await self.server.start()
        for name in ("", *self.service_names):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace: float | None) -> None:
        """Health goes NOT_SERVING first, then in-flight calls get ``grace`` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


# Clients ping every 30 s (aicollect.rpc.client.KEEPALIVE_OPTIONS), also on an idle stream;
# the server must permit that or it answers GOAWAY "too_many_pings". It pings idle
# connections itself every minute so a vanished consumer's stream is released.
SERVER_KEEPALIVE_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
]


def create_server(
    register: Callable[[grpc.aio.Server], None],
    service_names: Sequence[str],
    *,
    address: str,
    internal_token: str,
) -> GrpcServer:
    """Builds a grpc.aio server with auth, error mapping, health and reflection."""
    server = grpc.aio.server(
        interceptors=[BearerTokenInterceptor(internal_token), ErrorMappingInterceptor()],
        options=[("grpc.so_reuseport", 0), *SERVER_KEEPALIVE_OPTIONS],
    )
    register(server)
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    port = server.add_insecure_port(address)
    if port == 0:
        raise RuntimeError(f"could not bind gRPC server to {address}")
    return GrpcServer(server, port, health_servicer, tuple(service_names))


async def wait_for_signal() -> None:
    """Returns on the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
