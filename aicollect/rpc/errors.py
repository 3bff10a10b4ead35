"""The one place domain errors become gRPC status codes (with ``google.rpc.ErrorInfo``)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from aicollect import errors

ERROR_DOMAIN = "aicollect.io"

# Ordered most specific first; the first isinstance match wins.
STATUS_BY_ERROR: tuple[tuple[type[errors.DomainError], grpc.StatusCode], ...] = (
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.ConcurrentModification, grpc.StatusCode.ABORTED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.NotImplementedYet, grpc.StatusCode.UNIMPLEMENTED),
)


def status_code_for(error: errors.DomainError) -> grpc.StatusCode:
    for cls, code in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return code
    return grpc.StatusCode.INTERNAL


def rich_status(error: errors.DomainError) -> tuple[grpc.StatusCode, str, bytes]:
    """Returns (code, message, serialized google.rpc.Status) for a domain error."""
    code = status_code_for(error)
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    details = [_pack(info)]
    if isinstance(error, errors.Unavailable) and error.retry_after_seconds is not None:
        retry = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(error.retry_after_seconds))
        )
        details.append(_pack(retry))
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    return code, error.message, status.SerializeToString()


def internal_status() -> tuple[grpc.StatusCode, str, bytes]:
    info = error_details_pb2.ErrorInfo(reason="INTERNAL", domain=ERROR_DOMAIN)
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message="internal error", details=[_pack(info)]
    )
    return grpc.StatusCode.INTERNAL, "internal error", status.SerializeToString()


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.RetryInfo) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def error_info(
    rpc_error: grpc.aio.AioRpcError | grpc.RpcError,
) -> error_details_pb2.ErrorInfo | None:
    """Extracts ErrorInfo from a received error (clients, tests, the gateway)."""
    from grpc_status import rpc_status

    status = rpc_status.from_call(rpc_error)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
