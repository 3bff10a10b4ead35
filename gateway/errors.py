"""The one mapping from gRPC status codes to HTTP answers of the dashboard endpoints."""

from __future__ import annotations

import grpc
from aiohttp import web

from aicollect.rpc.errors import error_info

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}
# Messages of these codes are written for callers; anything else is summarised.
CALLER_FACING = set(HTTP_STATUS) - {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def error_response(exc: grpc.aio.AioRpcError, request_id: str) -> web.Response:
    code = exc.code()
    info = error_info(exc)
    # UNAUTHENTICATED with a domain reason is about the caller (a webhook signature); without
    # one it is our own internal token failing, a gateway misconfiguration.
    caller_unauthenticated = code == grpc.StatusCode.UNAUTHENTICATED and info is not None
    status = HTTP_STATUS.get(
        code,
        401 if caller_unauthenticated else 502 if code == grpc.StatusCode.UNAUTHENTICATED else 500,
    )
    if code in CALLER_FACING or caller_unauthenticated:
        message = exc.details() or code.name.lower()
    elif status in (503, 504):
        message = "the service is temporarily unavailable; try again shortly"
    else:
        message = "internal error"
    body = {
        "error": {
            "code": code.name,
            "reason": info.reason
            if info is not None and (code in CALLER_FACING or caller_unauthenticated)
            else code.name,
            "message": message,
        },
        "request_id": request_id,
    }
    headers = {"Retry-After": "5"} if status == 503 else None
    return web.json_response(body, status=status, headers=headers)


def problem(status: int, reason: str, message: str, request_id: str) -> web.Response:
    return web.json_response(
        {"error": {"code": reason, "reason": reason, "message": message}, "request_id": request_id},
        status=status,
    )
