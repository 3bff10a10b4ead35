"""Daily reports: generated after each tenant's local midnight for the day before, stored
once, versioned on regeneration, fees netted with the tenant's stored terms.

The matcher's gRPC server runs in process on a real PostgreSQL; the scheduler is the one
the matcher process runs, with the clock injected (``ReportScheduler(clock=...)`` and
``build_server(clock=...)``) so a test can stand just before or after a midnight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
import pytest_asyncio
from google.protobuf.field_mask_pb2 import FieldMask
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.matching.v1 import matching_admin_service_pb2 as apb
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as agrpc
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from aicollect.rpc.client import internal_channel
from aicollect.settings import Settings
from services.matcher import daily_reports
from services.matcher.daily_reports import ReportSchedule, ReportScheduler
from services.matcher.domain import ReportTrigger
from services.matcher.metrics import MatcherMetrics
from services.matcher.models import AuditEvent, DailyReportRow, OutreachEventRow
from services.matcher.retention import purge_matcher
from services.matcher.server import build_server
from tests.conftest import INTERNAL_TOKEN
from tests.services.matcher.conftest import (
    Matcher,
    invalid_field,
    placement_input,
    qbo_payment,
    reason_of,
)

GRACE = timedelta(minutes=15)
LA = ZoneInfo("America/Los_Angeles")
REDUCED = pb.FeeTerms(
    contingency_fee_basis_points=2_500,
    out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_REDUCED,
    out_of_band_fee_basis_points=1_000,
)
WAIVED = pb.FeeTerms(
    contingency_fee_basis_points=2_500,
    out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_WAIVED,
)
FULL = pb.FeeTerms(
    contingency_fee_basis_points=2_000,
    out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_FULL,
)


@dataclass
class Clock:
    """What time it is for the reports; tests move it."""

    value: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.value


@dataclass
class Reports:
    matcher: Matcher
    clock: Clock
    metrics: MatcherMetrics

    def scheduler(self, default_zone: str = "UTC") -> ReportScheduler:
        """A scheduler as a matcher replica runs it (a new one is a restarted process)."""
        return ReportScheduler(
            self.matcher.sessions,
            ReportSchedule(default_zone=default_zone, grace=GRACE, catch_up_days=31),
            metrics=self.metrics,
            clock=self.clock,
        )

    async def settings(
        self,
        tenant: str = "acme",
        *,
        zone: str | None = None,
        terms: pb.FeeTerms | None = None,
        actor: str = "dana@support",
        reason: str = "pilot agreement",
    ) -> apb.TenantReportSettings:
        settings = apb.TenantReportSettings()
        paths = []
        if zone is not None:
            settings.time_zone = zone
            paths.append("time_zone")
        if terms is not None:
            settings.fee_terms.CopyFrom(terms)
            paths.append("fee_terms")
        reply = await self.matcher.admin.UpdateTenantReportSettings(
            apb.UpdateTenantReportSettingsRequest(
                tenant_id=tenant,
                settings=settings,
                update_mask=FieldMask(paths=paths),
                actor=actor,
                reason=reason,
            )
        )
        return reply.settings

    async def get(self, day: date, version: int = 0, tenant: str = "acme") -> pb.DailyReport:
        reply = await self.matcher.stub.GetDailyReport(
            pb.GetDailyReportRequest(tenant_id=tenant, day=day.isoformat(), version=version)
        )
        return reply.report

    async def listed(self, tenant: str = "acme") -> list[tuple[str, int, bool]]:
        reply = await self.matcher.stub.ListDailyReports(
            pb.ListDailyReportsRequest(tenant_id=tenant, page_size=100)
        )
        return [(r.key.day, r.key.version, r.latest) for r in reply.reports]

    async def regenerate(
        self, day: date, *, tenant: str = "acme", actor: str = "dana@support", reason: str = "x"
    ) -> pb.DailyReport:
        reply = await self.matcher.admin.RegenerateDailyReport(
            apb.RegenerateDailyReportRequest(
                tenant_id=tenant, day=day.isoformat(), actor=actor, reason=reason
            )
        )
        return reply.report

    async def rows(self) -> list[tuple[str, date, int]]:
        async with self.matcher.sessions() as session:
            result = await session.execute(
                select(
                    DailyReportRow.tenant_id, DailyReportRow.day, DailyReportRow.version
                ).order_by(DailyReportRow.tenant_id, DailyReportRow.day, DailyReportRow.version)
            )
            return [tuple(r) for r in result.tuples()]  # type: ignore[misc]

    async def ready_events(self) -> list[tuple[str, date | None, int | None]]:
        async with self.matcher.sessions() as session:
            result = await session.execute(
                select(
                    OutreachEventRow.tenant_id,
                    OutreachEventRow.report_day,
                    OutreachEventRow.report_version,
                )
                .where(OutreachEventRow.type == "report_ready")
                .order_by(OutreachEventRow.id)
            )
            return [tuple(r) for r in result.tuples()]  # type: ignore[misc]


@pytest_asyncio.fixture
async def reports(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[Reports]:
    clock = Clock()
    metrics = MatcherMetrics()
    server = build_server(
        sessions,
        address="127.0.0.1:0",
        internal_token=INTERNAL_TOKEN,
        metrics=metrics,
        clock=clock,
    )
    await server.start()
    channel = internal_channel(f"127.0.0.1:{server.port}", INTERNAL_TOKEN)
    try:
        yield Reports(
            Matcher(
                pb_grpc.MatchingServiceStub(channel),
                agrpc.MatchingAdminServiceStub(channel),
                sessions,
            ),
            clock,
            metrics,
        )
    finally:
        await channel.close(None)
        await server.stop(None)


def midnight_after(day: date, zone: ZoneInfo | str = "UTC") -> datetime:
    """The instant ``day`` ends in ``zone``."""
    tz = ZoneInfo(zone) if isinstance(zone, str) else zone
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)


def generated(metrics: MatcherMetrics, trigger: str) -> float:
    value = metrics.registry.get_sample_value(
        "aicollect_daily_reports_generated_total", {"trigger": trigger}
    )
    return value or 0.0


# ---------------------------------------------------------------------------------------


async def test_a_tenant_in_los_angeles_gets_yesterday_after_its_midnight_not_before(
    reports: Reports,
) -> None:
    await reports.settings(zone="America/Los_Angeles", terms=REDUCED)
    (placement,) = await reports.matcher.place(placement_input("70", 10_000))
    paid_at = datetime.now(UTC)
    await reports.matcher.portal(placement.placement_id, "pp-1", 4_000, when=paid_at)
    day = paid_at.astimezone(LA).date()  # the payment's day in Los Angeles
    scheduler = reports.scheduler()

    # UTC's midnight has passed long before Los Angeles': nothing is due for this tenant.
    reports.clock.value = midnight_after(day, "UTC") + GRACE + timedelta(seconds=1)
    assert await scheduler.run_once() == []
    # Just after Los Angeles' midnight, still inside the grace period: not yet.
    reports.clock.value = midnight_after(day, LA) + GRACE - timedelta(seconds=1)
    assert await scheduler.run_once() == []
    assert await reports.listed() == []

    reports.clock.value = midnight_after(day, LA) + GRACE + timedelta(seconds=1)
    assert await scheduler.run_once() == [("acme", day)]

    report = await reports.get(day)
    assert (report.key.day, report.key.version, report.time_zone) == (
        day.isoformat(),
        1,
        "America/Los_Angeles",
    )
    start = datetime.combine(day, time(0), tzinfo=LA)
    assert report.start_time.ToDatetime(tzinfo=UTC) == start
    assert report.end_time.ToDatetime(tzinfo=UTC) == midnight_after(day, LA)
    assert report.trigger == pb.REPORT_TRIGGER_SCHEDULE
    assert report.actor == "system"
    (usd,) = report.currencies
    assert [(p.portal_payment_id, p.amount_minor_units, p.fee_minor_units, p.net_minor_units)
            for p in usd.portal_payments] == [("pp-1", 4_000, 1_000, 3_000)]  # fmt: skip
    assert await reports.listed() == [(day.isoformat(), 1, True)]
    # The main backend learns it from the outreach stream.
    balance_changed, event = await reports.matcher.read_stream(2, tenant="acme")
    assert balance_changed.type == pb.OUTREACH_EVENT_TYPE_BALANCE_CHANGED  # the payment
    assert event.type == pb.OUTREACH_EVENT_TYPE_REPORT_READY
    assert event.placement_id == ""
    assert (event.report.tenant_id, event.report.day, event.report.version) == (
        "acme",
        day.isoformat(),
        1,
    )
    # The next round (and the next day's midnight not yet reached) makes nothing more.
    assert await scheduler.run_once() == []


async def test_days_missed_while_down_are_generated_once_when_back(reports: Reports) -> None:
    await reports.matcher.place(placement_input("70", 10_000))
    first = datetime.now(UTC).date()  # the tenant's first day (UTC, the default zone)
    before = reports.scheduler()
    reports.clock.value = midnight_after(first) - timedelta(minutes=1)
    assert await before.run_once() == []

    # The process was down over three midnights; a new one (a restart) catches up.
    reports.clock.value = midnight_after(first + timedelta(days=2)) + GRACE + timedelta(hours=3)
    after_restart = reports.scheduler()
    days = [first, first + timedelta(days=1), first + timedelta(days=2)]
    assert await after_restart.run_once() == [("acme", d) for d in days]
    assert await after_restart.run_once() == []
    assert await reports.scheduler().run_once() == []  # and again after another restart

    assert await reports.rows() == [("acme", d, 1) for d in days]
    assert await reports.ready_events() == [("acme", d, 1) for d in days]
    assert generated(reports.metrics, "schedule") == 3
    assert reports.metrics.registry.get_sample_value("aicollect_daily_reports_due") == 0


async def test_two_replicas_racing_store_each_report_once(reports: Reports) -> None:
    await reports.matcher.place(placement_input("70", 10_000))
    await reports.matcher.place(placement_input("70", 5_000), tenant="globex")
    first = datetime.now(UTC).date()
    reports.clock.value = midnight_after(first + timedelta(days=1)) + GRACE
    replicas = [reports.scheduler() for _ in range(3)]

    made = await asyncio.gather(*(r.run_once() for r in replicas))

    expected = sorted(
        (tenant, first + timedelta(days=n)) for tenant in ("acme", "globex") for n in (0, 1)
    )
    assert sorted(pair for round_ in made for pair in round_) == expected
    assert await reports.rows() == [(t, d, 1) for t, d in expected]
    assert sorted(await reports.ready_events()) == [(t, d, 1) for t, d in expected]


async def test_regenerating_makes_version_2_and_keeps_version_1(reports: Reports) -> None:
    await reports.settings(terms=REDUCED)
    await reports.matcher.place(placement_input("71", 6_000))
    await reports.matcher.pay(qbo_payment("B", [("71", 6_000)]))  # out of band, fee 10 %
    day = datetime.now(UTC).date()
    reports.clock.value = midnight_after(day) + GRACE
    assert await reports.scheduler().run_once() == [("acme", day)]
    v1 = await reports.get(day)
    async with reports.matcher.sessions() as session:
        stored_v1 = (
            await session.execute(select(DailyReportRow.body).where(DailyReportRow.version == 1))
        ).scalar_one()

    await reports.settings(terms=WAIVED, reason="contract amended: out-of-band fees waived")
    v2 = await reports.regenerate(day, actor="dana@support", reason="terms amended, ticket 77")

    assert v2.key.version == 2
    assert v2.trigger == pb.REPORT_TRIGGER_REGENERATE
    assert (v2.actor, v2.reason) == ("dana@support", "terms amended, ticket 77")
    assert v1.currencies[0].out_of_band_resolutions[0].fee_minor_units == 600
    assert v2.currencies[0].out_of_band_resolutions[0].fee_minor_units == 0
    assert await reports.get(day, version=1) == v1
    assert await reports.get(day) == v2  # version 0: the newest
    async with reports.matcher.sessions() as session:
        again = (
            await session.execute(select(DailyReportRow.body).where(DailyReportRow.version == 1))
        ).scalar_one()
    assert again == stored_v1  # byte for byte
    assert await reports.listed() == [(day.isoformat(), 2, True), (day.isoformat(), 1, False)]
    assert await reports.ready_events() == [("acme", day, 1), ("acme", day, 2)]
    assert generated(reports.metrics, "regenerate") == 1
    # The scheduler never makes another version by itself.
    assert await reports.scheduler().run_once() == []

    audit = (
        await reports.matcher.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant_id="acme", page_size=100)
        )
    ).events
    made = [
        (e.action, e.actor, e.details["version"]) for e in audit if e.action.startswith("daily")
    ]
    assert made == [
        ("daily_report.generated", "system", "1"),
        ("daily_report.generated", "dana@support", "2"),
    ]
    # A stored report cannot be changed, even by hand.
    with pytest.raises(DBAPIError, match="immutable"):
        async with reports.matcher.sessions.begin() as session:
            await session.execute(text("UPDATE matching.daily_reports SET reason = 'edited'"))


async def test_fees_netted_with_each_tenants_terms(reports: Reports) -> None:
    tenants = {"reduced-co": REDUCED, "waived-co": WAIVED, "full-co": FULL, "no-terms-co": None}
    for tenant, terms in tenants.items():
        if terms is not None:
            await reports.settings(tenant, terms=terms)
        portal, _ = await reports.matcher.place(
            placement_input("70", 10_000), placement_input("71", 6_000), tenant=tenant
        )
        await reports.matcher.portal(portal.placement_id, f"pp-{tenant}", 4_000)
        await reports.matcher.pay(qbo_payment(f"B-{tenant}", [("71", 6_000)]), tenant=tenant)
    day = datetime.now(UTC).date()
    reports.clock.value = midnight_after(day) + GRACE
    await reports.scheduler().run_once()

    figures = {}
    for tenant in tenants:
        report = await reports.get(day, tenant=tenant)
        (usd,) = report.currencies
        (portal_entry,) = usd.portal_payments
        (oob_entry,) = usd.out_of_band_resolutions
        figures[tenant] = (
            report.fee_terms_set,
            portal_entry.fee_minor_units,
            portal_entry.net_minor_units,
            pb.OutOfBandFeeTreatment.Name(oob_entry.fee_treatment),
            oob_entry.fee_minor_units,
            usd.totals.total_fee_minor_units,
        )
    assert figures == {
        # portal-paid 25 %: 10.00 of 40.00; out of band reduced to 10 %: 6.00 of 60.00
        "reduced-co": (True, 1_000, 3_000, "OUT_OF_BAND_FEE_TREATMENT_REDUCED", 600, 1_600),
        "waived-co": (True, 1_000, 3_000, "OUT_OF_BAND_FEE_TREATMENT_WAIVED", 0, 1_000),
        # 20 % on both
        "full-co": (True, 800, 3_200, "OUT_OF_BAND_FEE_TREATMENT_FULL", 1_200, 2_000),
        # no terms stored: no fee computed, the report says so
        "no-terms-co": (False, 0, 4_000, "OUT_OF_BAND_FEE_TREATMENT_UNSPECIFIED", 0, 0),
    }
    reduced = await reports.get(day, tenant="reduced-co")
    assert reduced.fee_terms == REDUCED


async def test_settings_changes_are_audited_and_read_back(reports: Reports) -> None:
    default = (
        await reports.matcher.admin.GetTenantReportSettings(
            apb.GetTenantReportSettingsRequest(tenant_id="acme")
        )
    ).settings
    assert (default.time_zone, default.time_zone_default, default.fee_terms_set) == (
        "UTC",
        True,
        False,
    )
    await reports.settings(zone="Europe/Berlin", terms=REDUCED, actor="dana@support")
    before = await reports.matcher.audit_count()
    same = await reports.settings(zone="Europe/Berlin", terms=REDUCED)  # a retry
    assert await reports.matcher.audit_count() == before
    assert (same.time_zone, same.time_zone_default, same.fee_terms_set) == (
        "Europe/Berlin",
        False,
        True,
    )
    assert same.fee_terms == REDUCED
    assert same.update_actor == "dana@support"
    audit = (
        await reports.matcher.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(tenant_id="acme", page_size=100)
        )
    ).events
    (change,) = [e for e in audit if e.action == "tenant_report_settings.updated"]
    assert change.reason == "pilot agreement"
    assert "Europe/Berlin" in change.details["time_zone"]
    assert '"oob_treatment": "reduced"' in change.details["fee_terms"]


async def test_bad_input_changes_nothing(reports: Reports) -> None:
    await reports.settings(zone="America/Los_Angeles", terms=REDUCED)
    await reports.matcher.place(placement_input("70", 10_000))
    audit_before = await reports.matcher.audit_count()
    admin = reports.matcher.admin

    def update(
        settings: apb.TenantReportSettings,
        paths: list[str],
        *,
        tenant: str = "acme",
        actor: str = "ops",
        reason: str = "r",
    ) -> apb.UpdateTenantReportSettingsRequest:
        return apb.UpdateTenantReportSettingsRequest(
            tenant_id=tenant,
            settings=settings,
            update_mask=FieldMask(paths=paths),
            actor=actor,
            reason=reason,
        )

    too_high = pb.FeeTerms()
    too_high.CopyFrom(REDUCED)
    too_high.out_of_band_fee_basis_points = 10_001
    no_treatment = pb.FeeTerms(contingency_fee_basis_points=2_000)
    bad = {
        "settings.time_zone": update(
            apb.TenantReportSettings(time_zone="Mars/Olympus"), ["time_zone"]
        ),
        "settings.fee_terms.out_of_band_fee_basis_points": update(
            apb.TenantReportSettings(fee_terms=too_high), ["fee_terms"]
        ),
        "settings.fee_terms.out_of_band_fee_treatment": update(
            apb.TenantReportSettings(fee_terms=no_treatment), ["fee_terms"]
        ),
        "settings.fee_terms": update(apb.TenantReportSettings(), ["fee_terms"]),
        "update_mask": update(
            apb.TenantReportSettings(time_zone="UTC"), ["time_zone", "tenant_id"]
        ),
        "actor": update(apb.TenantReportSettings(time_zone="UTC"), ["time_zone"], actor=" "),
        "reason": update(apb.TenantReportSettings(time_zone="UTC"), ["time_zone"], reason=""),
        "tenant_id": update(apb.TenantReportSettings(time_zone="UTC"), ["time_zone"], tenant=""),
    }
    for expected_field, request in bad.items():
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await admin.UpdateTenantReportSettings(request)
        assert invalid_field(error) == expected_field

    today = reports.clock.value.astimezone(LA).date()
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await reports.regenerate(today)  # not over yet in Los Angeles
    assert error.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert reason_of(error) == "DAY_NOT_OVER"
    for day, actor, reason, expected_field in (
        ("2026-13-01", "ops", "r", "day"),
        ("", "ops", "r", "day"),
        ("2026-01-01", "", "r", "actor"),
        ("2026-01-01", "ops", " ", "reason"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await admin.RegenerateDailyReport(
                apb.RegenerateDailyReportRequest(
                    tenant_id="acme", day=day, actor=actor, reason=reason
                )
            )
        assert invalid_field(error) == expected_field
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await reports.get(today - timedelta(days=3))
    assert error.value.code() == grpc.StatusCode.NOT_FOUND
    assert reason_of(error) == "REPORT_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await reports.get(today - timedelta(days=3), version=-1)
    assert invalid_field(error) == "version"
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await reports.matcher.stub.ListDailyReports(
            pb.ListDailyReportsRequest(tenant_id="acme", page_token="bm90LWEtdG9rZW4")
        )
    assert invalid_field(error) == "page_token"

    settings = (
        await admin.GetTenantReportSettings(apb.GetTenantReportSettingsRequest(tenant_id="acme"))
    ).settings
    assert (settings.time_zone, settings.fee_terms) == ("America/Los_Angeles", REDUCED)
    assert await reports.matcher.audit_count() == audit_before
    assert await reports.rows() == []
    assert await reports.ready_events() == []


async def test_the_list_is_paged_newest_day_first(reports: Reports) -> None:
    await reports.matcher.place(placement_input("70", 10_000))
    first = datetime.now(UTC).date()
    reports.clock.value = midnight_after(first + timedelta(days=4)) + GRACE
    await reports.scheduler().run_once()
    await reports.regenerate(first + timedelta(days=2))
    seen: list[tuple[str, int, bool]] = []
    token = ""
    while True:
        reply = await reports.matcher.stub.ListDailyReports(
            pb.ListDailyReportsRequest(tenant_id="acme", page_size=2, page_token=token)
        )
        seen += [(r.key.day, r.key.version, r.latest) for r in reply.reports]
        token = reply.next_page_token
        if not token:
            break
    days = [(first + timedelta(days=n)).isoformat() for n in range(5)]
    assert seen == [
        (days[4], 1, True),
        (days[3], 1, True),
        (days[2], 2, True),
        (days[2], 1, False),
        (days[1], 1, True),
        (days[0], 1, True),
    ]
    assert await reports.listed("globex") == []


async def test_reports_are_kept_for_their_years_then_purged(reports: Reports) -> None:
    now = datetime.now(UTC)
    old_day = (now - timedelta(days=366 * 8)).date()
    kept_day = (now - timedelta(days=365 * 6)).date()
    async with reports.matcher.sessions.begin() as session:
        for day in (old_day, kept_day):
            made = await daily_reports.generate(
                session,
                "acme",
                day,
                trigger=ReportTrigger.REGENERATE,
                now=now,
                default_zone="UTC",
                actor="archivist",
                reason="backfill",
            )
            assert made is not None
    settings = Settings.from_env({"AICOLLECT_RETENTION_REPORT_YEARS": "7"})
    counts = await purge_matcher(reports.matcher.sessions, settings, now=now)
    assert counts["daily_reports"] == 1
    assert [(t, d) for t, d, _ in await reports.rows()] == [("acme", kept_day)]
    async with reports.matcher.sessions() as session:
        count = (await session.execute(select(func.count(AuditEvent.id)))).scalar_one()
    assert count == 2  # the audit of both generations stays (its own years)
