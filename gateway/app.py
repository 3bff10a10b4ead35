"""The public HTTP gateway: an aiohttp app built by ``create_app``.

It owns nothing in the database; every request becomes a gRPC call to the integration
service (and, for status pages, the matcher).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from aicollect import logs
from aicollect.rpc.client import internal_channel
from aicollect.settings import Settings
from gateway import dashboard, outreach, reports, routes, screens
from gateway.keys import BACKENDS, METRICS, REQUEST_ID, SETTINGS, Backends
from gateway.metrics import GatewayMetrics
from gateway.server import read_deadline

log = logging.getLogger(__name__)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request id, access log, metrics; an unexpected error becomes a bare 500."""
    request_id = request.headers.get("X-Request-Id") or uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    logs.request_id.set(request_id)
    metrics = request.app[METRICS]
    route = (
        request.match_info.route.resource.canonical
        if request.match_info.route.resource
        else "unmatched"
    )
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    except Exception:
        log.exception("unhandled error", extra={"request_id": request_id, "route": route})
        response = web.json_response(
            {"error": "internal_error", "request_id": request_id}, status=500
        )
    finally:
        elapsed = time.perf_counter() - started
        metrics.requests.labels(route, request.method, str(status)).inc()
        metrics.latency.labels(route).observe(elapsed)
    response.headers["X-Request-Id"] = request_id
    return response


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process runs its event loop."""
    return web.json_response({"status": "ok"})


async def _check(channel: grpc.aio.Channel) -> str:
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=1.0
        )
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


async def readyz(request: web.Request) -> web.Response:
    """Readiness: both gRPC backends answer SERVING."""
    backends = request.app[BACKENDS]
    integration, matcher = await asyncio.gather(
        _check(backends.integration), _check(backends.matcher)
    )
    ready = integration == "SERVING" and matcher == "SERVING"
    return web.json_response(
        {"ready": ready, "integration": integration, "matcher": matcher},
        status=200 if ready else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[METRICS].registry)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def create_app(settings: Settings, *, backends: Backends | None = None) -> web.Application:
    """Builds the gateway. Tests pass ``backends`` wired to in-process servers."""
    app = web.Application(
        client_max_size=settings.webhook_max_bytes, middlewares=[observe, read_deadline]
    )
    app[SETTINGS] = settings
    app[METRICS] = GatewayMetrics()
    if backends is not None:
        app[BACKENDS] = backends
    else:
        app.cleanup_ctx.append(_channels)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    routes.add_routes(app)
    reports.add_routes(app)
    outreach.add_routes(app)
    screens.add_routes(app)
    if settings.env == "local":
        dashboard.add_routes(app)  # the reference page: never in production
    return app


async def _channels(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    token = settings.internal_token.get_secret_value() if settings.internal_token else ""
    integration = internal_channel(settings.integration_addr, token)
    matcher = internal_channel(settings.matcher_addr, token)
    app[BACKENDS] = Backends(integration=integration, matcher=matcher)
    yield
    await asyncio.gather(integration.close(None), matcher.close(None))
