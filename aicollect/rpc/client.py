"""Client-side helpers: channels that carry the internal bearer token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc


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


def internal_channel(address: str, token: str) -> grpc.aio.Channel:
    """An insecure (loopback / private network) channel that adds the bearer token."""
    interceptors: list[Any] = [_UnaryUnaryBearer(token), _UnaryStreamBearer(token)]
    return grpc.aio.insecure_channel(address, interceptors=interceptors)
