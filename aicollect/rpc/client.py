"""Client-side helpers: channels that carry the internal bearer token."""

from __future__ import annotations

from typing import Any

import grpc


class _BearerClientInterceptor(
    grpc.aio.UnaryUnaryClientInterceptor, grpc.aio.UnaryStreamClientInterceptor
):
    def __init__(self, token: str) -> None:
        self._md = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._md)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._with_token(details), request)


def internal_channel(address: str, token: str) -> grpc.aio.Channel:
    """An insecure (loopback / private network) channel that adds the bearer token."""
    return grpc.aio.insecure_channel(
        address, interceptors=[_BearerClientInterceptor(token)]
    )
