"""Public routes: Intuit's OAuth callback and the dashboard's JSON over the QBO connection."""

from __future__ import annotations

import logging
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as pb_grpc
from aicollect.urls import same_origin_and_path, with_query
from gateway.auth import AuthError, Caller, caller_of
from gateway.errors import error_response, problem
from gateway.keys import BACKENDS, REQUEST_ID, SETTINGS

log = logging.getLogger(__name__)

RPC_TIMEOUT_S = 10.0
MAX_PARAM = 2048


def _stub(request: web.Request) -> pb_grpc.IntegrationServiceAsyncStub:
    return pb_grpc.IntegrationServiceStub(request.app[BACKENDS].integration)


def _json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _authenticate(request: web.Request) -> Caller | web.Response:
    settings = request.app[SETTINGS]
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    try:
        return caller_of(request, secret)
    except AuthError as exc:
        response = problem(401, "UNAUTHENTICATED", str(exc), request[REQUEST_ID])
        response.headers["WWW-Authenticate"] = 'Bearer realm="ai-collect"'
        return response


async def connect_url(request: web.Request) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    try:
        reply = await _stub(request).CreateConnectUrl(
            pb.CreateConnectUrlRequest(tenant_id=caller.tenant_id, actor=caller.subject),
            timeout=RPC_TIMEOUT_S,
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(_json(reply))


async def status(request: web.Request) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    try:
        reply = await _stub(request).GetConnectionStatus(
            pb.GetConnectionStatusRequest(tenant_id=caller.tenant_id), timeout=RPC_TIMEOUT_S
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(_json(reply))


async def disconnect(request: web.Request) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    reason = ""
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            return problem(400, "MALFORMED_JSON", "the body is not JSON", request[REQUEST_ID])
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            reason = body["reason"][:2000]
    try:
        reply = await _stub(request).Disconnect(
            pb.DisconnectRequest(tenant_id=caller.tenant_id, actor=caller.subject, reason=reason),
            timeout=RPC_TIMEOUT_S + 5,
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(_json(reply))


async def callback(request: web.Request) -> web.StreamResponse:
    """Intuit sends the creditor's browser here; we always answer with a redirect to the
    configured dashboard, never a page of ours and never a URL taken from the request."""
    query = request.query
    params = {
        name: query.get(name, "")[:MAX_PARAM]
        for name in ("state", "code", "realmId", "error", "error_description")
    }
    settings = request.app[SETTINGS]
    try:
        reply = await _stub(request).CompleteConnection(
            pb.CompleteConnectionRequest(
                state=params["state"],
                code=params["code"],
                realm_id=params["realmId"],
                error=params["error"],
                error_description=params["error_description"],
            ),
            timeout=RPC_TIMEOUT_S + 20,
        )
        location = reply.redirect_url
    except grpc.aio.AioRpcError as exc:
        log.error(
            "callback could not be completed",
            extra={"grpc_code": exc.code().name, "request_id": request[REQUEST_ID]},
        )
        location = with_query(settings.dashboard_url, qbo="error", reason="internal_error")
    if not same_origin_and_path(location, settings.dashboard_url):
        location = with_query(settings.dashboard_url, qbo="error", reason="internal_error")
    raise web.HTTPFound(
        location, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/integrations/qbo/connect-url", connect_url)
    app.router.add_get("/v1/integrations/qbo/callback", callback)
    app.router.add_get("/v1/integrations/qbo", status)
    app.router.add_delete("/v1/integrations/qbo", disconnect)
