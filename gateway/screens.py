"""The dashboard screens that combine several services' replies (docs/dashboard-api.md).

The tenant is always the caller's (from its JWT); every answer is Proto3 JSON with every
field present (``aicollect/dashboard/v1/screens.proto``). Reading a screen changes nothing.

* ``GET /v1/integrations/{provider}/sync-progress``: the "initial sync in progress" screen.
* ``GET /v1/integrations/{provider}/disconnect-preview``: the disconnect confirmation.
* ``GET /v1/placements?status=&reason=&page_size=&page_token=``: placements with their
  audit timelines.
* ``GET /v1/placements/{placement_id}/timeline?page_token=``: one placement's timeline.

The connection panel is ``GET /v1/integrations/{provider}`` (gateway/routes.py) and the
placement preview the candidates routes next to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import grpc
from aiohttp import web

from aicollect.dashboard.v1 import screens_pb2 as spb
from aicollect.integration.v1 import integration_service_pb2 as ipb
from aicollect.integration.v1 import integration_service_pb2_grpc as ipb_grpc
from aicollect.matching.v1 import matching_service_pb2 as mpb
from aicollect.matching.v1 import matching_service_pb2_grpc as mpb_grpc
from aicollect.provider import Provider
from gateway.auth import Caller
from gateway.errors import error_response, problem
from gateway.keys import BACKENDS, REQUEST_ID
from gateway.routes import (
    MAX_PARAM,
    RPC_TIMEOUT_S,
    ProviderHandler,
    _authenticate,
    _trace,
    add_provider_routes,
    proto_json,
)

PLACEMENT_STATUSES = {
    name: mpb.PlacementStatus.Value(f"PLACEMENT_STATUS_{name.upper()}")
    for name in (
        "active",
        "paused_pending_review",
        "resolved_out_of_band",
        "resolved_paid_portal",
        "closed",
        "needs_review",
    )
}
MAX_REASON = 200
MAX_PAGE = 50  # each placement costs one audit read
TIMELINE_PAGE = 100
COUNT_PAGE = 1000
# States in which DELETE /v1/integrations/{provider} has a connection to end.
DISCONNECTABLE = {
    ipb.CONNECTION_STATE_CONNECTED,
    ipb.CONNECTION_STATE_NEEDS_REAUTHORIZATION,
    ipb.CONNECTION_STATE_TOKENS_UNREADABLE,
}
CONSEQUENCES = (
    "We stop syncing: no new invoices are pulled and no new payments are detected.",
    "Active placements continue: debts we already collect stay, and outreach on them "
    "continues unless you also stop all outreach.",
    "Tokens are revoked: connecting again goes through the consent screen.",
    "Data is retained: your placements and their audit trail remain.",
)


class BadQuery(Exception):
    """A query parameter the route does not take, or a bad value (safe to show)."""


def _integration(request: web.Request) -> ipb_grpc.IntegrationServiceAsyncStub:
    return ipb_grpc.IntegrationServiceStub(request.app[BACKENDS].integration)


def _matcher(request: web.Request) -> mpb_grpc.MatchingServiceAsyncStub:
    return mpb_grpc.MatchingServiceStub(request.app[BACKENDS].matcher)


def _only(request: web.Request, allowed: Iterable[str]) -> None:
    known = set(allowed)
    unknown = sorted({name for name in request.query if name not in known})
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise BadQuery(f"unknown query parameter {unknown[0][:40]!r} (this route takes: {takes})")


def _page_size(request: web.Request, default: int, largest: int) -> int:
    raw = request.query.get("page_size", "")
    if raw == "":
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= largest):
        raise BadQuery(f"page_size must be a whole number from 1 to {largest}")
    return int(raw)


def _page_token(request: web.Request) -> str:
    token = request.query.get("page_token", "")
    if len(token) > MAX_PARAM:
        raise BadQuery("page_token is too long")
    return token


def _statuses(request: web.Request) -> list[mpb.PlacementStatus.ValueType]:
    statuses = []
    for value in request.query.getall("status", []):
        if value not in PLACEMENT_STATUSES:
            raise BadQuery("status must be one of " + ", ".join(PLACEMENT_STATUSES))
        statuses.append(PLACEMENT_STATUSES[value])
    return statuses


def _reasons(request: web.Request) -> list[str]:
    reasons = request.query.getall("reason", [])
    for value in reasons:
        if not value.strip() or len(value) > MAX_REASON:
            raise BadQuery(
                f"reason must be a resolution reason such as 'paid out-of-band' "
                f"(1 to {MAX_REASON} characters)"
            )
    return [r.strip() for r in reasons]


def _bad(request: web.Request, exc: BadQuery) -> web.Response:
    return problem(400, "FIELD_INVALID", str(exc), request[REQUEST_ID])


def _answer(message: object) -> web.Response:
    return web.json_response(proto_json(message), headers={"Cache-Control": "no-store"})


async def _status(
    request: web.Request, caller: Caller, provider: Provider
) -> ipb.GetConnectionStatusResponse:
    return await _integration(request).GetConnectionStatus(
        ipb.GetConnectionStatusRequest(tenant_id=caller.tenant_id, provider=provider.to_pb()),
        timeout=RPC_TIMEOUT_S,
        metadata=_trace(request),
    )


async def sync_progress(request: web.Request, provider: Provider) -> web.Response:
    """Backfill phase and counts, with the candidates' totals staged so far."""
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    try:
        _only(request, ())
        status = await _status(request, caller, provider)
        progress = spb.SyncProgress(
            provider=status.provider,
            state=status.state,
            company_name=status.company_name,
            backfill=status.backfill,
        )
        if status.state == ipb.CONNECTION_STATE_CONNECTED:  # otherwise nothing is staged
            candidates = await _integration(request).ListPlacementCandidates(
                ipb.ListPlacementCandidatesRequest(
                    tenant_id=caller.tenant_id,
                    provider=provider.to_pb(),
                    statuses=[ipb.CANDIDATE_STATUS_PENDING],
                    page_size=1,
                ),
                timeout=RPC_TIMEOUT_S,
                metadata=_trace(request),
            )
            progress.intake_mode = candidates.mode
            progress.candidate_totals.extend(candidates.totals)
            progress.company_date = candidates.company_date
            if candidates.HasField("confirmation"):
                progress.confirmation.CopyFrom(candidates.confirmation)
    except BadQuery as exc:
        return _bad(request, exc)
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return _answer(progress)


async def _count(
    request: web.Request, caller: Caller, realm_id: str, status: mpb.PlacementStatus.ValueType
) -> list[mpb.Placement]:
    """Every placement of the caller's company in ``status`` (paged through)."""
    found: list[mpb.Placement] = []
    token = ""
    while True:
        page = await _matcher(request).ListPlacements(
            mpb.ListPlacementsRequest(
                tenant_id=caller.tenant_id,
                company_id=realm_id,
                statuses=[status],
                page_size=COUNT_PAGE,
                page_token=token,
            ),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
        found += page.placements
        token = page.next_page_token
        if not token:
            return found


async def disconnect_preview(request: web.Request, provider: Provider) -> web.Response:
    """What disconnecting will do: the placements that continue, and the option to stop
    all outreach. Placements are counted only when there is a company to disconnect."""
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    try:
        _only(request, ())
        status = await _status(request, caller, provider)
        preview = spb.DisconnectPreview(
            provider=status.provider,
            state=status.state,
            realm_id=status.realm_id,
            company_name=status.company_name,
            can_disconnect=status.state in DISCONNECTABLE,
            stop_all_outreach_available=True,
            consequences=CONSEQUENCES,
        )
        if status.realm_id:
            active, paused, review = await asyncio.gather(
                _count(request, caller, status.realm_id, mpb.PLACEMENT_STATUS_ACTIVE),
                _count(
                    request, caller, status.realm_id, mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW
                ),
                _count(request, caller, status.realm_id, mpb.PLACEMENT_STATUS_NEEDS_REVIEW),
            )
            preview.active_placement_count = len(active)
            preview.paused_placement_count = len(paused) + len(review)
            totals: dict[str, spb.ContinuingTotal] = {}
            for placement in active:
                code = placement.balance.currency_code
                total = totals.setdefault(code, spb.ContinuingTotal(currency_code=code))
                total.placement_count += 1
                total.balance_minor_units += placement.balance.minor_units
            preview.continuing.extend(totals[code] for code in sorted(totals))
    except BadQuery as exc:
        return _bad(request, exc)
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return _answer(preview)


async def _timeline(
    request: web.Request, caller: Caller, placement_id: str, token: str = ""
) -> mpb.ListAuditEventsResponse:
    return await _matcher(request).ListAuditEvents(
        mpb.ListAuditEventsRequest(
            tenant_id=caller.tenant_id,
            placement_id=placement_id,
            page_size=TIMELINE_PAGE,
            page_token=token,
        ),
        timeout=RPC_TIMEOUT_S,
        metadata=_trace(request),
    )


async def placements(request: web.Request) -> web.Response:
    """The tenant's placements, ``?status=resolved_out_of_band&reason=paid out-of-band``
    (each repeatable; none: all), ``page_size`` 1-50 (20 when absent), ``page_token``;
    each with its audit timeline."""
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    try:
        _only(request, ("status", "reason", "page_size", "page_token"))
        listing = await _matcher(request).ListPlacements(
            mpb.ListPlacementsRequest(
                tenant_id=caller.tenant_id,
                statuses=_statuses(request),
                resolution_reasons=_reasons(request),
                page_size=_page_size(request, 20, MAX_PAGE),
                page_token=_page_token(request),
            ),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
        timelines = await asyncio.gather(
            *(_timeline(request, caller, p.placement_id) for p in listing.placements)
        )
    except BadQuery as exc:
        return _bad(request, exc)
    except grpc.aio.AioRpcError as exc:
        return error_response(exc, request[REQUEST_ID])
    return _answer(
        spb.PlacementList(
            placements=[
                spb.PlacementWithTimeline(
                    placement=placement,
                    timeline=timeline.events,
                    timeline_next_page_token=timeline.next_page_token,
                )
                for placement, timeline in zip(listing.placements, timelines, strict=True)
            ],
            next_page_token=listing.next_page_token,
        )
    )


async def placement_timeline(request: web.Request) -> web.Response:
    """One placement's audit events, 100 a page; another tenant's placement is 404."""
    caller = _authenticate(request)
    if isinstance(caller, web.Response):
        return caller
    placement_id = request.match_info["placement_id"][:MAX_PARAM]
    try:
        _only(request, ("page_token",))
        token = _page_token(request)
        found = await _matcher(request).GetPlacement(
            mpb.GetPlacementRequest(placement_id=placement_id),
            timeout=RPC_TIMEOUT_S,
            metadata=_trace(request),
        )
        if found.placement.tenant_id != caller.tenant_id:
            return problem(404, "PLACEMENT_NOT_FOUND", "no such placement", request[REQUEST_ID])
        timeline = await _timeline(request, caller, placement_id, token)
    except BadQuery as exc:
        return _bad(request, exc)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:  # the same answer as another tenant's
            return problem(404, "PLACEMENT_NOT_FOUND", "no such placement", request[REQUEST_ID])
        return error_response(exc, request[REQUEST_ID])
    return _answer(
        spb.PlacementTimeline(
            placement_id=placement_id,
            timeline=timeline.events,
            next_page_token=timeline.next_page_token,
        )
    )


PROVIDER_ROUTES: tuple[tuple[str, str, ProviderHandler], ...] = (
    ("GET", "/v1/integrations/{provider}/sync-progress", sync_progress),
    ("GET", "/v1/integrations/{provider}/disconnect-preview", disconnect_preview),
)


def add_routes(app: web.Application) -> None:
    add_provider_routes(app, PROVIDER_ROUTES)
    app.router.add_get("/v1/placements", placements)
    app.router.add_get("/v1/placements/{placement_id}/timeline", placement_timeline)
