"""Public routes: the OAuth callback, webhooks and the dashboard's JSON over a connection.

Every route names its accounting platform in the path (``/v1/integrations/{provider}``,
``/v1/webhooks/{provider}``); ``qbo`` is QuickBooks Online. Each supported provider gets
its own concrete routes (so metrics are labelled per provider); any other provider name
answers 404 with a JSON problem (reason ``UNKNOWN_PROVIDER``)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format
from yarl import URL

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.integration.v1 import integration_service_pb2_grpc as pb_grpc
from aicollect.provider import SUPPORTED, Provider
from aicollect.rpc.convert import timestamp
from aicollect.urls import same_origin_and_path, with_query
from gateway.auth import AuthError, Caller, caller_of
from gateway.errors import error_response, problem
from gateway.keys import BACKENDS, METRICS, REQUEST_ID, SETTINGS

log = logging.getLogger(__name__)

RPC_TIMEOUT_S = 10.0
WEBHOOK_TIMEOUT_S = 2.5  # Intuit waits 3 s for our 200
MAX_PARAM = 2048


def callback_path(provider: Provider) -> str:
    """Where the provider's consent screen sends the browser back (the redirect URI)."""
    return f"/v1/integrations/{provider.value}/callback"


def binding_cookie(provider: Provider) -> str:
    """Binds an OAuth state to the browser that asked for it (RFC 6749 s. 10.12): HttpOnly,
    SameSite=Lax (sent on the top-level redirect back to us), only to the provider's
    callback path, one cookie per provider."""
    return f"aicollect_{provider.value}_binding"


CALLBACK_PATH = callback_path(Provider.QBO)
BINDING_COOKIE = binding_cookie(Provider.QBO)
# The integration service did not answer in time: the browser is told to try again.
UNAVAILABLE_CODES = (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE)


def _stub(request: web.Request) -> pb_grpc.IntegrationServiceAsyncStub:
    return pb_grpc.IntegrationServiceStub(request.app[BACKENDS].integration)


def _trace(request: web.Request) -> tuple[tuple[str, str], ...]:
    """Carries the request id to the services, so their log lines can be joined to ours."""
    return (("x-request-id", request[REQUEST_ID]),)


def _json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def proto_json(message: Any) -> dict[str, Any]:
    """Proto3 JSON (field names as in the .proto) with zero values present: what every
    dashboard route answers."""
    return json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def _authenticate(request: web.Request) -> Caller | web.Response:
    try:
        return caller_of(request, request.app[SETTINGS])
    except AuthError as exc:
        response = problem(401, "UNAUTHENTICATED", str(exc), request[REQUEST_ID])
        response.headers["WWW-Authenticate"] = 'Bearer realm="ai-collect"'
        return response


def _dashboard_origin(request: web.Request) -> str | None:
    """The request's Origin when it is the configured dashboard's origin, else None."""
    origin = request.headers.get("Origin")
    if not origin:
        return None
    try:
        allowed = URL(request.app[SETTINGS].dashboard_url).origin()
        return origin if URL(origin).origin() == allowed else None
    except ValueError:
        return None


def _cors(request: web.Request, response: web.Response) -> web.Response:
    """CORS with credentials for the dashboard's origin only: its ``fetch`` of connect-url
    runs with ``credentials: "include"`` so that the browser keeps the binding cookie."""
    response.headers["Vary"] = "Origin"
    origin = _dashboard_origin(request)
    if origin is not None:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Access-Control-Expose-Headers"] = "X-Request-Id"
    return response


async def connect_url_preflight(request: web.Request, provider: Provider) -> web.Response:
    response = web.Response(status=204)
    if _dashboard_origin(request) is not None:
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = (
            "Authorization, Content-Type, X-Request-Id"
        )
        response.headers["Access-Control-Max-Age"] = "600"
    return _cors(request, response)


async def connect_url(request: web.Request, provider: Provider) -> web.Response:
    """Mints the authorize URL and binds its state to this browser with a cookie."""
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return _cors(request, caller)
    try:
        reply = await _stub(request).CreateConnectUrl(
            pb.CreateConnectUrlRequest(
                tenant_id=caller.tenant_id, actor=caller.subject, provider=provider.to_pb()
            ),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        return _cors(request, error_response(exc, request[REQUEST_ID]))
    body = _json(reply)
    body.pop("browser_binding", None)  # for the cookie only, never readable by scripts
    response = web.json_response(body, headers={"Cache-Control": "no-store"})
    lifetime = reply.state_expire_time.ToDatetime(tzinfo=UTC) - datetime.now(UTC)
    response.set_cookie(
        binding_cookie(provider),
        reply.browser_binding,
        max_age=max(1, int(lifetime.total_seconds())),
        path=callback_path(provider),
        httponly=True,
        samesite="Lax",
        secure=request.app[SETTINGS].env != "local",
    )
    return _cors(request, response)


async def status(request: web.Request, provider: Provider) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    try:
        reply = await _stub(request).GetConnectionStatus(
            pb.GetConnectionStatusRequest(tenant_id=caller.tenant_id, provider=provider.to_pb()),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    # The dashboard's connection panel: state, company, enabled, kill switch, backfill and
    # sync times (its last sync), every field present.
    return web.json_response(proto_json(reply), headers={"Cache-Control": "no-store"})


async def disconnect(request: web.Request, provider: Provider) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    reason = ""
    stop_all_outreach = False  # "disconnect and stop all outreach" (gateway/outreach.py)
    if request.can_read_body:
        try:
            body = await request.json()
        except ValueError:
            return problem(400, "MALFORMED_JSON", "the body is not JSON", request[REQUEST_ID])
        if isinstance(body, dict) and isinstance(body.get("reason"), str):
            reason = body["reason"][:2000]
        if isinstance(body, dict) and "stop_all_outreach" in body:
            stop_all_outreach = body["stop_all_outreach"]
            if not isinstance(stop_all_outreach, bool):
                return problem(
                    400,
                    "FIELD_INVALID",
                    "stop_all_outreach must be true or false",
                    request[REQUEST_ID],
                )
    try:
        reply = await _stub(request).Disconnect(
            pb.DisconnectRequest(
                tenant_id=caller.tenant_id,
                actor=caller.subject,
                reason=reason,
                provider=provider.to_pb(),
                stop_all_outreach=stop_all_outreach,
            ),
            timeout=RPC_TIMEOUT_S + 5,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(proto_json(reply))


CANDIDATE_STATUSES = {
    name: pb.CandidateStatus.Value(f"CANDIDATE_STATUS_{name.upper()}")
    for name in ("pending", "excluded", "confirming", "confirmed", "dropped")
}
FUTURE_MODES = {
    "": pb.PLACEMENT_INTAKE_MODE_UNSPECIFIED,
    "automatic": pb.PLACEMENT_INTAKE_MODE_AUTOMATIC,
    "confirm_each_time": pb.PLACEMENT_INTAKE_MODE_CONFIRM_EACH_TIME,
}
CONFIRM_TIMEOUT_S = 120.0  # every candidate is read again from the platform first


async def _body(request: web.Request) -> dict[str, Any] | web.Response:
    """The JSON object of a POST (an empty body is ``{}``), or a 400 problem."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        return problem(400, "MALFORMED_JSON", "the body is not JSON", request[REQUEST_ID])
    if not isinstance(body, dict):
        return problem(400, "MALFORMED_JSON", "the body must be a JSON object", request[REQUEST_ID])
    return body


def _text_field(body: dict[str, Any], name: str, request: web.Request) -> str | web.Response:
    value = body.get(name, "")
    if not isinstance(value, str):
        return problem(400, "FIELD_INVALID", f"{name} must be a string", request[REQUEST_ID])
    return value[:2000]


async def candidates(request: web.Request, provider: Provider) -> web.Response:
    """The placement preview: the tenant's candidates, ``?status=pending&status=excluded``
    (any of pending, excluded, confirming, confirmed, dropped; none: all), paged with
    ``page_size`` and ``page_token``."""
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    statuses = []
    for value in request.query.getall("status", []):
        if value not in CANDIDATE_STATUSES:
            return problem(
                400,
                "FIELD_INVALID",
                "status must be one of " + ", ".join(CANDIDATE_STATUSES),
                request[REQUEST_ID],
            )
        statuses.append(CANDIDATE_STATUSES[value])
    raw_size = request.query.get("page_size", "0")
    if not raw_size.isdigit() or len(raw_size) > 6:
        return problem(
            400, "FIELD_INVALID", "page_size must be a whole number", request[REQUEST_ID]
        )
    try:
        reply = await _stub(request).ListPlacementCandidates(
            pb.ListPlacementCandidatesRequest(
                tenant_id=caller.tenant_id,
                provider=provider.to_pb(),
                statuses=statuses,
                page_size=int(raw_size),
                page_token=request.query.get("page_token", "")[:MAX_PARAM],
            ),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(proto_json(reply), headers={"Cache-Control": "no-store"})


async def _exclude_or_include(
    request: web.Request, provider: Provider, *, exclude: bool
) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    reason = _text_field(body, "reason", request)
    if isinstance(reason, web.Response):
        return reason
    invoice_id = request.match_info["invoice_id"][:MAX_PARAM]
    fields: dict[str, Any] = {
        "tenant_id": caller.tenant_id,
        "provider": provider.to_pb(),
        "invoice_id": invoice_id,
        "actor": caller.subject,
        "reason": reason.strip()
        or ("excluded by the creditor" if exclude else "included again by the creditor"),
    }
    try:
        reply: Any
        if exclude:
            reply = await _stub(request).ExcludePlacementCandidate(
                pb.ExcludePlacementCandidateRequest(**fields),
                timeout=RPC_TIMEOUT_S,
                metadata=_trace(request),
            )
        else:
            reply = await _stub(request).IncludePlacementCandidate(
                pb.IncludePlacementCandidateRequest(**fields),
                timeout=RPC_TIMEOUT_S,
                metadata=_trace(request),
            )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(proto_json(reply))


async def exclude_candidate(request: web.Request, provider: Provider) -> web.Response:
    """Leaves one candidate out of the confirmation; body ``{"reason": "..."}`` (optional)."""
    return await _exclude_or_include(request, provider, exclude=True)


async def include_candidate(request: web.Request, provider: Provider) -> web.Response:
    """Puts an excluded candidate back; body ``{"reason": "..."}`` (optional)."""
    return await _exclude_or_include(request, provider, exclude=False)


async def confirm_candidates(request: web.Request, provider: Provider) -> web.Response:
    """Confirms the pending candidates; body ``{"future_mode": "automatic" |
    "confirm_each_time", "reason": "..."}`` (both optional)."""
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    reason = _text_field(body, "reason", request)
    if isinstance(reason, web.Response):
        return reason
    mode = body.get("future_mode", "")
    if mode not in FUTURE_MODES:
        return problem(
            400,
            "FIELD_INVALID",
            "future_mode must be automatic or confirm_each_time (or absent)",
            request[REQUEST_ID],
        )
    try:
        reply = await _stub(request).ConfirmPlacementCandidates(
            pb.ConfirmPlacementCandidatesRequest(
                tenant_id=caller.tenant_id,
                provider=provider.to_pb(),
                actor=caller.subject,
                reason=reason,
                future_mode=FUTURE_MODES[mode],
            ),
            timeout=CONFIRM_TIMEOUT_S,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(proto_json(reply))


async def callback(request: web.Request, provider: Provider) -> web.StreamResponse:
    """The provider sends the creditor's browser here; we always answer with a redirect to
    the configured dashboard (``?<provider>=connected|error``), never a page of ours and
    never a URL taken from the request, within ``callback_timeout_seconds`` even when the
    integration service hangs."""
    query = request.query
    params = {
        name: query.get(name, "")[:MAX_PARAM]
        for name in ("state", "code", "realmId", "error", "error_description")
    }
    settings = request.app[SETTINGS]
    cookie = binding_cookie(provider)
    binding = request.cookies.get(cookie, "")[:MAX_PARAM]
    spent = False
    try:
        reply = await _stub(request).CompleteConnection(
            pb.CompleteConnectionRequest(
                state=params["state"],
                code=params["code"],
                realm_id=params["realmId"],
                error=params["error"],
                error_description=params["error_description"],
                browser_binding=binding,
                provider=provider.to_pb(),
            ),
            timeout=settings.callback_timeout_seconds,
            metadata=_trace(request),
        )
        location = reply.redirect_url
        # The cookie matched this state, which is now consumed: it has no further use.
        spent = bool(reply.tenant_id) and reply.error_code != "browser_mismatch"
    except grpc.aio.AioRpcError as exc:
        log.error(
            "callback could not be completed",
            extra={"grpc_code": exc.code().name, "request_id": request[REQUEST_ID]},
        )
        reason = "unavailable" if exc.code() in UNAVAILABLE_CODES else "internal_error"
        location = with_query(
            settings.dashboard_url, **{provider.redirect_param: "error"}, reason=reason
        )
    if not same_origin_and_path(location, settings.dashboard_url):
        location = with_query(
            settings.dashboard_url, **{provider.redirect_param: "error"}, reason="internal_error"
        )
    response = web.Response(
        status=302,
        headers={
            "Location": location,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )
    if spent and binding:
        response.del_cookie(cookie, path=callback_path(provider))
    return response


async def disconnected(request: web.Request, provider: Provider) -> web.Response:
    """The provider's Disconnect URL: after the creditor removed the app on the provider's
    side (Intuit's connected-apps page), the browser lands here. Only ``realmId`` is read;
    the integration service marks that company's connection disconnected once the
    provider confirms the grant is gone (a forged link changes nothing). The answer is
    always a redirect to the configured dashboard (``?<provider>=disconnected`` or
    ``?<provider>=disconnect_unconfirmed``), never to a URL taken from the request."""
    settings = request.app[SETTINGS]
    unconfirmed = {provider.redirect_param: "disconnect_unconfirmed"}
    try:
        reply = await _stub(request).ReportProviderDisconnect(
            pb.ReportProviderDisconnectRequest(
                provider=provider.to_pb(), realm_id=request.query.get("realmId", "")[:MAX_PARAM]
            ),
            timeout=settings.callback_timeout_seconds,
            metadata=_trace(request),
        )
        location = reply.redirect_url
    except grpc.aio.AioRpcError as exc:
        log.error(
            "Disconnect URL landing could not be handled",
            extra={"grpc_code": exc.code().name, "request_id": request[REQUEST_ID]},
        )
        reason = "unavailable" if exc.code() in UNAVAILABLE_CODES else "internal_error"
        location = with_query(settings.dashboard_url, **unconfirmed, reason=reason)
    if not same_origin_and_path(location, settings.dashboard_url):
        location = with_query(settings.dashboard_url, **unconfirmed, reason="internal_error")
    return web.Response(
        status=302,
        headers={
            "Location": location,
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


# The header carrying each provider's webhook signature (over the raw body).
SIGNATURE_HEADERS = {Provider.QBO: "intuit-signature", Provider.XERO: "x-xero-signature"}
# Providers whose webhook answers carry no body at all (Xero: "no response body", also
# for the Intent to Receive handshake's 401).
BODYLESS_WEBHOOK_REPLIES = frozenset({Provider.XERO})


async def webhook(request: web.Request, provider: Provider) -> web.Response:
    """The provider's webhook: the raw bytes go to IngestWebhook; 200 only once stored."""
    response = await _webhook(request, provider)
    if provider in BODYLESS_WEBHOOK_REPLIES and response.status in (200, 401):
        return web.Response(status=response.status)
    return response


async def _webhook(request: web.Request, provider: Provider) -> web.Response:
    metrics = request.app[METRICS]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        metrics.webhooks.labels("too_large").inc()
        return problem(413, "PAYLOAD_TOO_LARGE", "the body is too large", request[REQUEST_ID])
    try:
        reply = await _stub(request).IngestWebhook(
            pb.IngestWebhookRequest(
                body=body,
                signature=request.headers.get(SIGNATURE_HEADERS[provider], ""),
                content_type=request.headers.get("Content-Type", ""),
                receive_time=timestamp(datetime.now(UTC)),
                provider=provider.to_pb(),
            ),
            timeout=WEBHOOK_TIMEOUT_S,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        response = error_response(exc, request[REQUEST_ID])
        outcome = {400: "malformed", 401: "bad_signature"}.get(response.status, "unavailable")
        metrics.webhooks.labels(outcome).inc()
        if response.status >= 500 and response.status != 503:
            response = problem(
                503, "UNAVAILABLE", "try again later", request[REQUEST_ID]
            )  # Intuit retries on any non-200; never let a 5xx look final
        return response
    metrics.webhooks.labels("accepted").inc()
    metrics.webhook_events.labels("stored").inc(reply.stored_event_count)
    metrics.webhook_events.labels("duplicate").inc(reply.duplicate_event_count)
    metrics.webhook_events.labels("dropped").inc(reply.dropped_event_count)
    return web.json_response(
        {
            "stored": reply.stored_event_count,
            "duplicates": reply.duplicate_event_count,
            "dropped": reply.dropped_event_count,
        }
    )


ProviderHandler = Callable[[web.Request, Provider], Awaitable[web.StreamResponse]]


def _bound(handler: ProviderHandler, provider: Provider) -> Callable[..., Any]:
    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request, provider)

    return route


async def unknown_provider(request: web.Request) -> web.Response:
    """A provider name this deployment does not serve: 404, saying which ones it does."""
    name = request.match_info.get("provider", "")[:40]
    return problem(
        404,
        "UNKNOWN_PROVIDER",
        f"unknown accounting provider {name!r}; supported: "
        + ", ".join(p.value for p in SUPPORTED),
        request[REQUEST_ID],
    )


ROUTES: tuple[tuple[str, str, ProviderHandler], ...] = (
    ("POST", "/v1/webhooks/{provider}", webhook),
    ("POST", "/v1/integrations/{provider}/connect-url", connect_url),
    ("OPTIONS", "/v1/integrations/{provider}/connect-url", connect_url_preflight),
    ("GET", "/v1/integrations/{provider}/callback", callback),
    ("GET", "/v1/integrations/{provider}/disconnected", disconnected),
    ("GET", "/v1/integrations/{provider}", status),
    ("DELETE", "/v1/integrations/{provider}", disconnect),
    ("GET", "/v1/integrations/{provider}/candidates", candidates),
    ("POST", "/v1/integrations/{provider}/candidates/confirm", confirm_candidates),
    ("POST", "/v1/integrations/{provider}/candidates/{invoice_id}/exclude", exclude_candidate),
    ("POST", "/v1/integrations/{provider}/candidates/{invoice_id}/include", include_candidate),
)


def add_provider_routes(
    app: web.Application, table: tuple[tuple[str, str, ProviderHandler], ...]
) -> None:
    """Concrete routes per supported provider (``/v1/webhooks/qbo``, ...), then the same
    paths with any other provider name answering 404."""
    for provider in SUPPORTED:
        for method, path, handler in table:
            app.router.add_route(
                method, path.replace("{provider}", provider.value), _bound(handler, provider)
            )
    for method, path, _ in table:
        app.router.add_route(method, path, unknown_provider)


def add_routes(app: web.Application) -> None:
    add_provider_routes(app, ROUTES)
