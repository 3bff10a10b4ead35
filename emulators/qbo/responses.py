"""Intuit's response envelopes and Fault bodies."""

from __future__ import annotations

from datetime import tzinfo

from aiohttp import web

from emulators.common.http import dumps, raw_json
from emulators.qbo.clock import format_millis


def fault(
    status: int,
    code: str,
    message: str,
    detail: str,
    *,
    fault_type: str,
    now: float,
    tz: tzinfo,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The standard ``{"Fault": {"Error": [...], "type": ...}, "time": ...}`` body."""
    body = {
        "Fault": {
            "Error": [{"Message": message, "Detail": detail, "code": code, "element": ""}],
            "type": fault_type,
        },
        "time": format_millis(now, tz),
    }
    return raw_json(dumps(body), status, headers)


def gateway_fault(status: int, detail: str | None, now: float) -> web.Response:
    """Intuit's gateway answers auth failures with lower-case keys and an epoch-ms ``time``."""
    if status == 401:
        message = "message=AuthenticationFailed; errorCode=003200; statusCode=401"
        code, fault_type = "3200", "AUTHENTICATION"
        headers = {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'}
    else:
        message = "message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403"
        code, fault_type = "3100", "SERVICE"
        headers = {}
    body = {
        "fault": {
            "error": [{"message": message, "detail": detail, "code": code}],
            "type": fault_type,
        },
        "requestid": None,
        "time": int(now * 1000),
        "status": status,
    }
    return raw_json(dumps(body), status, headers)


def throttled(now: float, tz: tzinfo, retry_after: int | None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return fault(
        429,
        "3001",
        "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "The request limit was reached.  Try again later",
        fault_type="SERVICE",
        now=now,
        tz=tz,
        headers=headers,
    )


def system_fault(status: int, now: float, tz: tzinfo) -> web.Response:
    return fault(
        status,
        "10000",
        "An application error has occurred while processing your request",
        "System Failure Error: An unexpected error occurred while accessing or saving your data. "
        "Please wait a few minutes and try again. If the problem persists, contact customer "
        "support.",
        fault_type="SystemFault",
        now=now,
        tz=tz,
    )


def invalid_query(detail: str, now: float, tz: tzinfo) -> web.Response:
    """Intuit's two query faults: 4000 "Error parsing query" for a ``QueryParserError``
    (the statement is not the language), 4001 "Invalid query" for a ``QueryValidationError``
    (an unknown entity or property, a value out of range)."""
    if detail.startswith("QueryParserError"):
        code, message = "4000", "Error parsing query"
    else:
        code, message = "4001", "Invalid query"
    return fault(400, code, message, detail, fault_type="ValidationFault", now=now, tz=tz)


def not_found(path: str, url: str, now: float, tz: tzinfo) -> web.Response:
    """A path under ``/v3/company/{realm}/`` that names no resource: 404 with the SystemFault
    Intuit's servers put in such answers."""
    return fault(
        404,
        "10000",
        "An application error has occurred while processing your request",
        f"System Failure Error: Could not find resource for relative : {path} of full path: {url}",
        fault_type="SystemFault",
        now=now,
        tz=tz,
    )
