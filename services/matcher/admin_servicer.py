"""MatchingAdminService: the matching settings, owned here and read at decision time; each
tenant's daily-report settings and the explicit regeneration of a daily report."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.db.settings_store import SettingsSnapshot, require_actor_and_reason
from aicollect.errors import InvalidArgument
from aicollect.matching.v1 import matching_admin_service_pb2 as pb
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as pb_grpc
from aicollect.rpc.convert import timestamp, update_paths
from services.matcher import convert, daily_reports
from services.matcher.domain import ReportSettings, ReportTrigger
from services.matcher.metrics import MatcherMetrics
from services.matcher.report_settings import get_report_settings, update_report_settings
from services.matcher.settings import (
    MATCHING_SPECS,
    get_matching_settings,
    update_matching_settings,
)

Context = grpc.aio.ServicerContext[Any, Any]
UPDATABLE = frozenset(spec.key for spec in MATCHING_SPECS)
REPORT_SETTINGS_PATHS = frozenset({"time_zone", "fee_terms"})


def to_proto(snapshot: SettingsSnapshot) -> pb.MatchingSettings:
    return pb.MatchingSettings(
        oob_amount_tolerance_cents=int(snapshot.values["oob_amount_tolerance_cents"]),
        oob_match_window_minutes=int(snapshot.values["oob_match_window_minutes"]),
        update_time=timestamp(snapshot.update_time),
        update_actor=snapshot.update_actor,
    )


def report_settings_pb(settings: ReportSettings) -> pb.TenantReportSettings:
    return pb.TenantReportSettings(
        time_zone=settings.time_zone,
        fee_terms=convert.fee_terms_pb(settings.terms),
        fee_terms_set=settings.terms is not None,
        time_zone_default=settings.zone_is_default,
        update_time=timestamp(settings.updated_at),
        update_actor=settings.updated_by,
    )


class MatchingAdminServicer(pb_grpc.MatchingAdminServiceServicer):
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        report_default_zone: str = "UTC",
        metrics: MatcherMetrics | None = None,
        clock: Callable[[], datetime] = daily_reports.utc_now,
    ) -> None:
        self._sessions = sessions
        self._default_zone = report_default_zone
        self._metrics = metrics
        self._clock = clock

    async def GetMatchingSettings(
        self, request: pb.GetMatchingSettingsRequest, context: Context
    ) -> pb.GetMatchingSettingsResponse:
        async with self._sessions() as session:
            return pb.GetMatchingSettingsResponse(
                settings=to_proto(await get_matching_settings(session))
            )

    async def UpdateMatchingSettings(
        self, request: pb.UpdateMatchingSettingsRequest, context: Context
    ) -> pb.UpdateMatchingSettingsResponse:
        paths = update_paths(request.update_mask, UPDATABLE)
        changes = {path: getattr(request.settings, path) for path in paths}
        async with self._sessions.begin() as session:
            snapshot = await update_matching_settings(
                session, changes, actor=request.actor, reason=request.reason
            )
        return pb.UpdateMatchingSettingsResponse(settings=to_proto(snapshot))

    async def GetTenantReportSettings(
        self, request: pb.GetTenantReportSettingsRequest, context: Context
    ) -> pb.GetTenantReportSettingsResponse:
        tenant = convert.required_id(request.tenant_id, "tenant_id")
        async with self._sessions() as session:
            settings = await get_report_settings(session, tenant, self._default_zone)
        return pb.GetTenantReportSettingsResponse(settings=report_settings_pb(settings))

    async def UpdateTenantReportSettings(
        self, request: pb.UpdateTenantReportSettingsRequest, context: Context
    ) -> pb.UpdateTenantReportSettingsResponse:
        tenant = convert.required_id(request.tenant_id, "tenant_id")
        paths = update_paths(request.update_mask, REPORT_SETTINGS_PATHS)
        zone = (
            convert.time_zone(request.settings.time_zone, "settings.time_zone")
            if "time_zone" in paths
            else None
        )
        terms = None
        if "fee_terms" in paths:
            if not request.settings.HasField("fee_terms"):
                raise InvalidArgument(
                    "settings.fee_terms is required with the fee_terms path",
                    field="settings.fee_terms",
                )
            terms = convert.fee_terms_in(request.settings.fee_terms, "settings.fee_terms")
        async with self._sessions.begin() as session:
            settings = await update_report_settings(
                session,
                tenant,
                time_zone=zone,
                terms=terms,
                actor=request.actor,
                reason=request.reason,
                default_zone=self._default_zone,
            )
        return pb.UpdateTenantReportSettingsResponse(settings=report_settings_pb(settings))

    async def RegenerateDailyReport(
        self, request: pb.RegenerateDailyReportRequest, context: Context
    ) -> pb.RegenerateDailyReportResponse:
        tenant = convert.required_id(request.tenant_id, "tenant_id")
        day = convert.calendar_date(request.day, "day", required=True)
        assert day is not None
        actor, reason = require_actor_and_reason(request.actor, request.reason)
        started = time.perf_counter()
        async with self._sessions.begin() as session:
            generated = await daily_reports.generate(
                session,
                tenant,
                day,
                trigger=ReportTrigger.REGENERATE,
                now=self._clock(),
                default_zone=self._default_zone,
                actor=actor,
                reason=reason,
            )
        assert generated is not None  # a regeneration always takes the next version
        if self._metrics is not None:
            self._metrics.report_generated(ReportTrigger.REGENERATE, time.perf_counter() - started)
        return pb.RegenerateDailyReportResponse(report=generated.report)
