"""Client-side helpers: channels that carry the internal bearer token, balance over every
address a name resolves to, keep long streams alive and retry idempotent calls.

An address may be a plain ``host:port`` (resolved by DNS: every A/AAAA record is a
backend, which is what a Kubernetes headless Service gives) or any gRPC target such as
``dns:///aicollect-matcher:50052`` or ``ipv4:10.0.0.1:50052,10.0.0.2:50052``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import grpc

# Calls that are safe to send again when a backend was unreachable: reads, and writes that
# are idempotent by contract (placement intake by invoice, accounting facts by id and
# version, portal payments by their id, webhook deliveries by event id). Anything that
# consumes or mints one-shot state (the OAuth callback, connect URLs, disconnect, restore
# with its expected version, admin changes) is never retried behind the caller's back.
IDEMPOTENT_METHODS: dict[str, tuple[str, ...]] = {
    "aicollect.integration.v1.IntegrationService": (
        "GetConnectionStatus",
        "IngestWebhook",
        "PreviewPlacements",
        "GetPlacementRules",
    ),
    "aicollect.integration.v1.AdminService": (
        "GetTenantSettings",
        "GetPlatformSettings",
        "ListSettingsAuditEvents",
    ),
    "aicollect.matching.v1.MatchingService": (
        "UpsertPlacements",
        "ApplyAccountingPayment",
        "ApplyAccountingInvoice",
        "ApplyAccountingCredit",
        "RecordPortalPayment",
        "GetPlacement",
        "ListPlacements",
        "ListAuditEvents",
        "GetReconciliationReport",
        "ListDailyReports",
        "GetDailyReport",
    ),
    "aicollect.matching.v1.MatchingAdminService": (
        "GetMatchingSettings",
        "GetTenantReportSettings",
    ),
}

RETRY_POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def service_config() -> str:
    """The channel's service config: round robin over every resolved address, and the
    retry policy for the idempotent methods."""
    names = [
        {"service": service, "method": method}
        for service, methods in IDEMPOTENT_METHODS.items()
        for method in methods
    ]
    return json.dumps(
        {
            "loadBalancingConfig": [{"round_robin": {}}],
            "methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}],
        }
    )


# Keepalive pings every 30 s (within what the servers permit, see server.py) so an idle
# outreach stream through a load balancer or NAT is noticed when it dies, not hours later.
KEEPALIVE_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    metadata.add("authorization", f"Bearer {token}")
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


if TYPE_CHECKING:  # generic only in the stubs
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
else:
    _UnaryUnary = grpc.aio.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.aio.UnaryStreamClientInterceptor


# grpc.aio files an interceptor under the first interceptor type it is an instance of, so
# each call shape needs its own class.
class _UnaryUnaryBearer(_UnaryUnary):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


class _UnaryStreamBearer(_UnaryStream):
    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_token(details, self._token), request)


def channel_options() -> list[tuple[str, Any]]:
    return [
        ("grpc.service_config", service_config()),
        ("grpc.enable_retries", 1),
        *KEEPALIVE_OPTIONS,
    ]


def internal_channel(address: str, token: str) -> grpc.aio.Channel:
    """An insecure (loopback / private network) channel that adds the bearer token and
    balances over every address ``address`` resolves to."""
    interceptors: list[Any] = [_UnaryUnaryBearer(token), _UnaryStreamBearer(token)]
    return grpc.aio.insecure_channel(address, options=channel_options(), interceptors=interceptors)
