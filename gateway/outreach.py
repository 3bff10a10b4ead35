"""The dashboard pauses and resumes outreach: the caller's tenant (from its JWT) only, the
caller (its JWT subject) as the actor, a reason required in the JSON body
(``{"reason": "..."}``). See ``docs/pausing-outreach.md``.

* ``POST /v1/placements/{placement_id}/outreach/pause`` and ``.../outreach/resume``: one
  placement.
* ``POST /v1/debtors/{company_id}/{customer_id}/outreach/pause`` and ``.../resume``: every
  placement of one debtor (a customer of the connected company), now and later.
* ``POST /v1/outreach/pause`` and ``/v1/outreach/resume``: "stop all outreach", every
  placement of the tenant, now and later.
* ``GET /v1/outreach/pauses[?include_resumed=true]``: the tenant's pauses, newest first.

Each answers the matcher's reply as Proto3 JSON (``PauseOutreachResponse``: the pause and
how many placements it paused; ``ResumeOutreachResponse``; ``ListOutreachPausesResponse``).
Errors follow the one mapping (``gateway/errors.py``): a target already paused or not
paused is 409 (``OUTREACH_ALREADY_PAUSED``, ``OUTREACH_NOT_PAUSED``), an unknown placement or
debtor of the tenant 404. "Disconnect and stop all outreach" is the disconnect route's
``stop_all_outreach`` (``gateway/routes.py``).
"""

from __future__ import annotations

import grpc
from aiohttp import web

from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from gateway.errors import error_response, problem
from gateway.keys import BACKENDS, REQUEST_ID
from gateway.routes import RPC_TIMEOUT_S, _authenticate, _body, _text_field, _trace, proto_json

# A tenant-wide pause writes an event per placement: tens of thousands take about a second.
PAUSE_TIMEOUT_S = RPC_TIMEOUT_S + 20
NO_STORE = {"Cache-Control": "no-store"}


def _stub(request: web.Request) -> pb_grpc.MatchingServiceAsyncStub:
    return pb_grpc.MatchingServiceStub(request.app[BACKENDS].matcher)


def _target(request: web.Request) -> pb.OutreachTarget:
    info = request.match_info
    if "placement_id" in info:
        return pb.OutreachTarget(placement_id=info["placement_id"])
    if "customer_id" in info:
        return pb.OutreachTarget(
            debtor=pb.OutreachDebtor(company_id=info["company_id"], customer_id=info["customer_id"])
        )
    return pb.OutreachTarget(all_placements=True)


async def _change(request: web.Request, resume: bool) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    body = await _body(request)
    if isinstance(body, web.Response):
        return body
    reason = _text_field(body, "reason", request)
    if isinstance(reason, web.Response):
        return reason
    stub = _stub(request)
    target = _target(request)
    reply: pb.PauseOutreachResponse | pb.ResumeOutreachResponse
    try:
        if resume:
            reply = await stub.ResumeOutreach(
                pb.ResumeOutreachRequest(
                    tenant_id=caller.tenant_id, target=target, actor=caller.subject, reason=reason
                ),
                timeout=PAUSE_TIMEOUT_S,
                metadata=_trace(request),
            )
        else:
            reply = await stub.PauseOutreach(
                pb.PauseOutreachRequest(
                    tenant_id=caller.tenant_id, target=target, actor=caller.subject, reason=reason
                ),
                timeout=PAUSE_TIMEOUT_S,
                metadata=_trace(request),
            )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(proto_json(reply), headers=NO_STORE)


async def pause(request: web.Request) -> web.Response:
    return await _change(request, resume=False)


async def resume(request: web.Request) -> web.Response:
    return await _change(request, resume=True)


async def list_pauses(request: web.Request) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    raw = request.query.get("include_resumed", "false")
    if raw not in ("true", "false"):
        return problem(
            400, "FIELD_INVALID", "include_resumed must be true or false", request[REQUEST_ID]
        )
    try:
        reply = await _stub(request).ListOutreachPauses(
            pb.ListOutreachPausesRequest(tenant_id=caller.tenant_id, include_resumed=raw == "true"),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(proto_json(reply), headers=NO_STORE)


def add_routes(app: web.Application) -> None:
    for base in (
        "/v1/placements/{placement_id}/outreach",
        "/v1/debtors/{company_id}/{customer_id}/outreach",
        "/v1/outreach",
    ):
        app.router.add_post(f"{base}/pause", pause)
        app.router.add_post(f"{base}/resume", resume)
    app.router.add_get("/v1/outreach/pauses", list_pauses)
