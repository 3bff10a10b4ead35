"""MatchingService: converts protos to domain calls and back, one transaction per call.

Decisions go through ``matching`` (a snapshot, the pure table in ``decisions/rules``, the
effects written through the journal), the reads through ``queries``, the stream in
``outbox`` and the report in ``reconciliation``; domain errors become gRPC codes in the
shared interceptor.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from aicollect.errors import DomainError, InvalidArgument
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from aicollect.rpc.errors import status_code_for
from services.matcher import convert, daily_reports, facts_in, matching, pauses, queries
from services.matcher.domain import InvoiceIn
from services.matcher.metrics import MatcherMetrics
from services.matcher.outbox import notifier_for, stream_events
from services.matcher.pause_convert import pause_pb, target_in
from services.matcher.reconciliation import build_report

Context = grpc.aio.ServicerContext[Any, Any]

# Without a notification (which normally wakes the stream at once), the outbox is re-read
# this often.
STREAM_POLL_SECONDS = 2.0


async def _paused_all(session: AsyncSession, placements: list[pb.Placement]) -> list[pb.Placement]:
    """Sets ``outreach_paused`` on replies (a pause is not a column of the placement)."""
    held = await pauses.paused_ids(session, [p.placement_id for p in placements])
    for p in placements:
        p.outreach_paused = p.placement_id in held
    return placements


async def _paused(session: AsyncSession, placement: pb.Placement) -> pb.Placement:
    return (await _paused_all(session, [placement]))[0]


# What makes a set of changes be decided one by one instead: a deadlock, or a serialization
# failure, with another transaction (each change alone takes its locks in one statement).
_RETRY_ALONE = frozenset({"40P01", "40001"})


def _kind(change: facts_in.Change) -> str:
    """The decision-latency label of a change (the name of its own call)."""
    if isinstance(change, InvoiceIn):
        return "invoice"
    return "credit" if change.payment_id.startswith(facts_in.CREDIT_ID_PREFIX) else "payment"


def _refusal(error: DomainError) -> pb.ChangeRefusal:
    """A change refused alone: the status its own call would have failed with."""
    return pb.ChangeRefusal(
        status=status_code_for(error).name, reason=error.reason, message=error.message
    )


class MatchingServicer(pb_grpc.MatchingServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        stream_poll_seconds: float = STREAM_POLL_SECONDS,
        metrics: MatcherMetrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics or MatcherMetrics()
        bind = sessions.kw.get("bind")
        if not isinstance(bind, AsyncEngine):
            raise TypeError("the session factory must be bound to an AsyncEngine")
        self._engine = bind
        self._notifier = notifier_for(bind)
        self._poll = stream_poll_seconds

    async def UpsertPlacements(
        self, request: pb.UpsertPlacementsRequest, context: Context
    ) -> pb.UpsertPlacementsResponse:
        items = facts_in.placements_in(request)
        tenant, provider, company = facts_in.books_in(request)
        async with self._sessions.begin() as session:
            results = await matching.upsert_placements(session, tenant, provider, company, items)
        return pb.UpsertPlacementsResponse(results=[convert.upsert_result_pb(r) for r in results])

    async def ApplyAccountingPayment(
        self, request: pb.ApplyAccountingPaymentRequest, context: Context
    ) -> pb.ApplyAccountingPaymentResponse:
        books, payment, source = facts_in.payment_in(request)
        started = time.perf_counter()
        async with self._sessions.begin() as session:
            decisions = await matching.apply_payment(session, *books, payment, source)
        self._metrics.decided("payment", decisions, time.perf_counter() - started)
        return pb.ApplyAccountingPaymentResponse(
            decisions=[convert.decision_pb(d) for d in decisions]
        )

    async def ApplyAccountingInvoice(
        self, request: pb.ApplyAccountingInvoiceRequest, context: Context
    ) -> pb.ApplyAccountingInvoiceResponse:
        books, invoice, source = facts_in.invoice_in(request)
        started = time.perf_counter()
        async with self._sessions.begin() as session:
            decisions = await matching.apply_invoice(session, *books, invoice, source)
        self._metrics.decided("invoice", decisions, time.perf_counter() - started)
        return pb.ApplyAccountingInvoiceResponse(
            decisions=[convert.decision_pb(d) for d in decisions]
        )

    async def ApplyAccountingCredit(
        self, request: pb.ApplyAccountingCreditRequest, context: Context
    ) -> pb.ApplyAccountingCreditResponse:
        books, credit, source = facts_in.credit_in(request)
        started = time.perf_counter()
        async with self._sessions.begin() as session:
            decisions = await matching.apply_payment(session, *books, credit, source)
        self._metrics.decided("credit", decisions, time.perf_counter() - started)
        return pb.ApplyAccountingCreditResponse(
            decisions=[convert.decision_pb(d) for d in decisions]
        )

    async def ApplyAccountingChanges(
        self, request: pb.ApplyAccountingChangesRequest, context: Context
    ) -> pb.ApplyAccountingChangesResponse:
        books, changes, source = facts_in.changes_in(request)
        results = [pb.AppliedChange() for _ in changes]
        valid = [(i, c) for i, c in enumerate(changes) if not isinstance(c, InvalidArgument)]
        for i, change in enumerate(changes):
            if isinstance(change, InvalidArgument):
                results[i].refusal.CopyFrom(_refusal(change))
        if not valid:
            return pb.ApplyAccountingChangesResponse(results=results)
        started = time.perf_counter()
        try:
            async with self._sessions.begin() as session:
                decided = await matching.apply_changes(
                    session, *books, [c for _, c in valid], source
                )
        except DBAPIError as exc:
            if str(getattr(exc.orig, "sqlstate", "")) not in _RETRY_ALONE:
                raise
            # A deadlock with another writer: each change alone, in order.
            decided = []
            for _, change in valid:
                async with self._sessions.begin() as session:
                    decided += await matching.apply_changes(session, *books, [change], source)
        elapsed = (time.perf_counter() - started) / max(1, len(valid))
        self._metrics.changes_per_set.observe(len(valid))
        for (i, change), decisions in zip(valid, decided, strict=True):
            self._metrics.decided(_kind(change), decisions, elapsed)
            results[i].decisions.extend(convert.decision_pb(d) for d in decisions)
        return pb.ApplyAccountingChangesResponse(results=results)

    async def RecordPortalPayment(
        self, request: pb.RecordPortalPaymentRequest, context: Context
    ) -> pb.RecordPortalPaymentResponse:
        payment = convert.portal_payment_in(request)
        started = time.perf_counter()
        async with self._sessions.begin() as session:
            decision, placement = await matching.record_portal_payment(session, payment)
            reply = pb.RecordPortalPaymentResponse(
                decision=convert.decision_pb(decision),
                placement=await _paused(session, convert.placement_pb(placement)),
            )
        self._metrics.decided("portal_payment", [decision], time.perf_counter() - started)
        return reply

    async def GetPlacement(
        self, request: pb.GetPlacementRequest, context: Context
    ) -> pb.GetPlacementResponse:
        placement_id = convert.required_id(request.placement_id, "placement_id")
        async with self._sessions() as session:
            placement = await queries.get_placement(session, placement_id)
            return pb.GetPlacementResponse(
                placement=await _paused(session, convert.placement_pb(placement))
            )

    async def ListPlacements(
        self, request: pb.ListPlacementsRequest, context: Context
    ) -> pb.ListPlacementsResponse:
        tenant = convert.required_id(request.tenant_id, "tenant_id")
        statuses = convert.statuses_filter(list(request.statuses))
        flags = convert.review_flags_filter(list(request.review_flags))
        reasons = convert.resolution_reasons_filter(list(request.resolution_reasons))
        async with self._sessions() as session:
            rows, token = await queries.list_placements(
                session,
                tenant,
                statuses,
                facts_in.provider_in(request.provider) if request.provider else "",
                request.company_id.strip(),
                request.invoice_id.strip(),
                request.page_size,
                request.page_token,
                review_flags=flags,
                resolution_reasons=reasons,
            )
            return pb.ListPlacementsResponse(
                placements=await _paused_all(session, [convert.placement_pb(p) for p in rows]),
                next_page_token=token,
            )

    async def RestorePlacement(
        self, request: pb.RestorePlacementRequest, context: Context
    ) -> pb.RestorePlacementResponse:
        placement_id, version = convert.restore_target(request)
        async with self._sessions.begin() as session:
            placement = await matching.restore_placement(
                session, placement_id, version, request.actor, request.reason
            )
            reply = pb.RestorePlacementResponse(
                placement=await _paused(session, convert.placement_pb(placement))
            )
        return reply

    async def ClearReviewFlag(
        self, request: pb.ClearReviewFlagRequest, context: Context
    ) -> pb.ClearReviewFlagResponse:
        placement_id, version = convert.restore_target(request)
        async with self._sessions.begin() as session:
            placement = await matching.clear_review_flag(
                session, placement_id, version, request.actor, request.reason
            )
            reply = pb.ClearReviewFlagResponse(
                placement=await _paused(session, convert.placement_pb(placement))
            )
        return reply

    async def StreamOutreachEvents(
        self, request: pb.StreamOutreachEventsRequest, context: Context
    ) -> AsyncIterator[pb.StreamOutreachEventsResponse]:
        events = stream_events(
            self._engine,
            self._notifier,
            request.cursor,
            request.tenant_id.strip(),
            poll_interval=self._poll,
            positions=self._metrics.streams,
        )
        try:
            async for row in events:
                yield pb.StreamOutreachEventsResponse(event=convert.outreach_event_pb(row))
        finally:
            await events.aclose()

    async def ListAuditEvents(
        self, request: pb.ListAuditEventsRequest, context: Context
    ) -> pb.ListAuditEventsResponse:
        async with self._sessions() as session:
            rows, token = await queries.list_audit_events(
                session,
                request.tenant_id.strip(),
                request.placement_id.strip(),
                request.page_size,
                request.page_token,
            )
            return pb.ListAuditEventsResponse(
                events=[convert.audit_event_pb(e) for e in rows], next_page_token=token
            )

    async def GetReconciliationReport(
        self, request: pb.GetReconciliationReportRequest, context: Context
    ) -> pb.GetReconciliationReportResponse:
        tenant, day, zone, terms = convert.report_request(request)
        async with self._sessions() as session:
            report = await build_report(session, tenant, day, zone, terms)
        return convert.report_pb(report)

    async def ListDailyReports(
        self, request: pb.ListDailyReportsRequest, context: Context
    ) -> pb.ListDailyReportsResponse:
        tenant = convert.required_id(request.tenant_id, "tenant_id")
        async with self._sessions() as session:
            rows, token = await daily_reports.list_reports(
                session, tenant, request.page_size, request.page_token
            )
            return pb.ListDailyReportsResponse(
                reports=[convert.daily_report_summary_pb(row, latest) for row, latest in rows],
                next_page_token=token,
            )

    async def GetDailyReport(
        self, request: pb.GetDailyReportRequest, context: Context
    ) -> pb.GetDailyReportResponse:
        tenant = convert.required_id(request.tenant_id, "tenant_id")
        day = convert.calendar_date(request.day, "day", required=True)
        assert day is not None
        async with self._sessions() as session:
            report = await daily_reports.get_report(session, tenant, day, request.version)
        return pb.GetDailyReportResponse(report=report)

    async def PauseOutreach(
        self, request: pb.PauseOutreachRequest, context: Context
    ) -> pb.PauseOutreachResponse:
        target = target_in(request.target, request.HasField("target"))
        async with self._sessions.begin() as session:
            pause, count = await pauses.pause_outreach(
                session, request.tenant_id, target, request.actor, request.reason
            )
            return pb.PauseOutreachResponse(pause=pause_pb(pause), placements_paused=count)

    async def ResumeOutreach(
        self, request: pb.ResumeOutreachRequest, context: Context
    ) -> pb.ResumeOutreachResponse:
        target = target_in(request.target, request.HasField("target"))
        async with self._sessions.begin() as session:
            pause, count = await pauses.resume_outreach(
                session, request.tenant_id, target, request.actor, request.reason
            )
            return pb.ResumeOutreachResponse(pause=pause_pb(pause), placements_resumed=count)

    async def ListOutreachPauses(
        self, request: pb.ListOutreachPausesRequest, context: Context
    ) -> pb.ListOutreachPausesResponse:
        async with self._sessions() as session:
            rows = await pauses.list_pauses(session, request.tenant_id, request.include_resumed)
            return pb.ListOutreachPausesResponse(pauses=[pause_pb(p) for p in rows])
