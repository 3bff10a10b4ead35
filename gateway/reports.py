"""The dashboard's daily reconciliation reports: the caller's tenant (from its JWT) only.

* ``GET /v1/reconciliation-reports?page_size=&page_token=``: the stored reports, newest
  day first (``ListDailyReports``).
* ``GET /v1/reconciliation-reports/{YYYY-MM-DD}[?version=N]``: one report as Proto3 JSON
  with every field present, zero values included (``GetDailyReport``; no version: the
  newest).
* ``GET /v1/reconciliation-reports/{YYYY-MM-DD}.csv[?version=N]``: the same report as CSV
  (``aicollect.report_csv``).
"""

from __future__ import annotations

import grpc
from aiohttp import web

from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from aicollect.report_csv import report_csv
from gateway.errors import error_response, problem
from gateway.keys import BACKENDS, REQUEST_ID
from gateway.routes import RPC_TIMEOUT_S, _authenticate, _trace, proto_json

BASE = "/v1/reconciliation-reports"
_DAY = r"{day:\d{4}-\d{2}-\d{2}}"


def _stub(request: web.Request) -> pb_grpc.MatchingServiceAsyncStub:
    return pb_grpc.MatchingServiceStub(request.app[BACKENDS].matcher)


def _int_param(request: web.Request, name: str) -> int | web.Response:
    raw = request.query.get(name, "0") or "0"
    if not raw.isdigit() or len(raw) > 9:
        return problem(400, "FIELD_INVALID", f"{name} must be a whole number", request[REQUEST_ID])
    return int(raw)


async def list_reports(request: web.Request) -> web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    size = _int_param(request, "page_size")
    if isinstance(size, web.Response):
        return size
    try:
        reply = await _stub(request).ListDailyReports(
            pb.ListDailyReportsRequest(
                tenant_id=caller.tenant_id,
                page_size=size,
                page_token=request.query.get("page_token", "")[:2048],
            ),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return web.json_response(proto_json(reply), headers={"Cache-Control": "no-store"})


async def _fetch(request: web.Request) -> pb.DailyReport | web.Response:
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    version = _int_param(request, "version")
    if isinstance(version, web.Response):
        return version
    try:
        reply = await _stub(request).GetDailyReport(
            pb.GetDailyReportRequest(
                tenant_id=caller.tenant_id, day=request.match_info["day"], version=version
            ),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return reply.report


async def get_report_json(request: web.Request) -> web.Response:
    report = await _fetch(request)
    if isinstance(report, web.Response):
        return report
    return web.json_response(proto_json(report), headers={"Cache-Control": "no-store"})


async def get_report_csv(request: web.Request) -> web.Response:
    report = await _fetch(request)
    if isinstance(report, web.Response):
        return report
    name = f"reconciliation-{report.key.day}-v{report.key.version}.csv"
    return web.Response(
        text=report_csv(report),
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(BASE, list_reports)
    app.router.add_get(f"{BASE}/{_DAY}.csv", get_report_csv)
    app.router.add_get(f"{BASE}/{_DAY}", get_report_json)
