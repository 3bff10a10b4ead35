"""Stored daily reconciliation reports: generated once per tenant and day after the day ended
in the tenant's time zone, never changed, a new version per explicit regeneration.

* ``generate`` stores one report in the caller's transaction: the figures come from
  ``reconciliation.build_report`` (the one place of the fee arithmetic) with the tenant's
  fee terms as they stand, the row is written with its audit record and a ``report_ready``
  outbox event (so the main backend, which follows the outreach stream, learns about it
  in commit order and never about a report that was not committed). A transaction-level
  advisory lock per (tenant, day) serialises the writers of one day, so versions are
  consecutive and the scheduler's version 1 is written once however many replicas race;
  the unique key (tenant, day, version) is the backstop.
* ``ReportScheduler`` runs in every matcher replica: each round it finds the tenants (those
  with placements or report settings), the days that have ended for each (in its zone,
  after the grace period) and have no report, oldest first, within the catch-up window,
  and generates them. A replica that was down at midnight fills the gap when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from aicollect.errors import FailedPrecondition, InvalidArgument, NotFound
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.rpc.paging import decode_token, encode_token, page_size
from services.matcher.convert import daily_report_pb
from services.matcher.decisions.rules.common import SYSTEM_ACTOR
from services.matcher.domain import EventType, FeeTerms, FeeTreatment, ReportTrigger
from services.matcher.journal import append_outbox
from services.matcher.metrics import MatcherMetrics
from services.matcher.models import AuditEvent, DailyReportRow
from services.matcher.reconciliation import build_report, day_bounds
from services.matcher.report_settings import all_report_settings, get_report_settings

log = logging.getLogger(__name__)

# pg_advisory_xact_lock(class, key) of one (tenant, day): "DREP" in ASCII.
REPORT_LOCK_CLASS = 0x44524550
# Without stored terms no fee is computed (fees the portal recorded still apply).
NO_TERMS = FeeTerms(0, FeeTreatment.FULL, 0)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Generated:
    """A report just stored."""

    row: DailyReportRow
    report: pb.DailyReport


async def _lock_day(session: AsyncSession, tenant_id: str, day: date) -> None:
    await session.execute(
        select(
            func.pg_advisory_xact_lock(
                REPORT_LOCK_CLASS, func.hashtext(f"{tenant_id}/{day.isoformat()}")
            )
        )
    )


async def generate(
    session: AsyncSession,
    tenant_id: str,
    day: date,
    *,
    trigger: ReportTrigger,
    now: datetime,
    default_zone: str,
    actor: str = SYSTEM_ACTOR,
    reason: str = "",
) -> Generated | None:
    """Stores the tenant's report for ``day`` in the caller's transaction. A scheduled
    report is version 1 and is skipped (None) when the day already has a report; a
    regeneration is the next version. The day must have ended in the tenant's zone."""
    await _lock_day(session, tenant_id, day)
    latest = (
        await session.execute(
            select(func.max(DailyReportRow.version)).where(
                DailyReportRow.tenant_id == tenant_id, DailyReportRow.day == day
            )
        )
    ).scalar()
    if trigger is ReportTrigger.SCHEDULE and latest is not None:
        return None
    version = (latest or 0) + 1
    settings = await get_report_settings(session, tenant_id, default_zone)
    _, end = day_bounds(day, ZoneInfo(settings.time_zone))
    if end > now:
        raise FailedPrecondition(
            f"{day.isoformat()} has not ended yet in {settings.time_zone}",
            reason="DAY_NOT_OVER",
            metadata={"time_zone": settings.time_zone, "day_end": end.isoformat()},
        )
    figures = await build_report(
        session, tenant_id, day, settings.time_zone, settings.terms or NO_TERMS
    )
    report = daily_report_pb(figures, version, settings.terms, now, trigger, actor, reason)
    body = report.SerializeToString(deterministic=True)
    digest = hashlib.sha256(body).hexdigest()
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "day": day,
        "version": version,
        "time_zone": settings.time_zone,
        "end_time": end,
        "trigger": trigger.value,
        "actor": actor,
        "reason": reason,
        "currency_codes": [c.currency_code for c in report.currencies],
        "body": body,
        "sha256": digest,
        "generated_at": now,
    }
    stored = await session.execute(
        insert(DailyReportRow)
        .values(**values)
        .on_conflict_do_nothing(constraint="uq_daily_reports_version")
        .returning(DailyReportRow.id)
    )
    report_id = stored.scalar()
    if report_id is None:  # the unique key's backstop; the lock makes this unreachable
        return None
    session.add(
        AuditEvent(
            tenant_id=tenant_id,
            subject_type="daily_report",
            subject_id=f"{tenant_id}/{day.isoformat()}",
            action="daily_report.generated",
            actor=actor,
            reason=reason or "scheduled after the day ended",
            details={
                "day": day.isoformat(),
                "version": version,
                "trigger": trigger.value,
                "time_zone": settings.time_zone,
                "fee_terms_set": settings.terms is not None,
                "sha256": digest,
            },
            created_at=now,
        )
    )
    await session.flush()
    await append_outbox(
        session,
        [
            {
                "event_id": str(uuid.uuid4()),
                "placement_id": None,
                "tenant_id": tenant_id,
                "type": EventType.REPORT_READY.value,
                "status": "",
                "currency_code": "",
                "balance_minor_units": 0,
                "reason": f"reconciliation report for {day.isoformat()} (version {version})",
                "created_at": now,
                "report_day": day,
                "report_version": version,
            }
        ],
    )
    row = DailyReportRow(id=report_id, **values)
    return Generated(row, report)


# ---------------------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------------------


async def get_report(
    session: AsyncSession, tenant_id: str, day: date, version: int
) -> pb.DailyReport:
    """The stored report (``version`` 0: the newest), exactly as generated."""
    if version < 0:
        raise InvalidArgument("version must not be negative (0: the newest)", field="version")
    stmt = select(DailyReportRow.body).where(
        DailyReportRow.tenant_id == tenant_id, DailyReportRow.day == day
    )
    if version:
        stmt = stmt.where(DailyReportRow.version == version)
    body = (await session.execute(stmt.order_by(DailyReportRow.version.desc()).limit(1))).scalar()
    if body is None:
        which = f"version {version}" if version else "any version"
        raise NotFound(
            f"no daily report of tenant {tenant_id} for {day.isoformat()} ({which})",
            reason="REPORT_NOT_FOUND",
        )
    report = pb.DailyReport()
    report.ParseFromString(body)
    return report


async def list_reports(
    session: AsyncSession, tenant_id: str, requested_size: int, token: str
) -> tuple[list[tuple[DailyReportRow, bool]], str]:
    """Newest day first, newest version first; each with whether it is its day's newest."""
    size = page_size(requested_size)
    filters = {"tenant_id": tenant_id}
    position = decode_token(token, filters)
    latest = func.max(DailyReportRow.version).over(partition_by=DailyReportRow.day)
    inner = (
        select(DailyReportRow, (DailyReportRow.version == latest).label("latest"))
        .where(DailyReportRow.tenant_id == tenant_id)
        .subquery()
    )
    row_alias = aliased(DailyReportRow, inner)
    stmt = select(row_alias, inner.c.latest)
    if position is not None:
        try:
            after = (date.fromisoformat(str(position["day"])), int(position["version"]))
        except (KeyError, ValueError, TypeError):
            raise InvalidArgument("page_token is not valid", field="page_token") from None
        stmt = stmt.where(tuple_(inner.c.day, inner.c.version) < after)
    stmt = stmt.order_by(inner.c.day.desc(), inner.c.version.desc()).limit(size + 1)
    rows = [(row, bool(is_latest)) for row, is_latest in (await session.execute(stmt)).tuples()]
    if len(rows) <= size:
        return rows, ""
    last = rows[size - 1][0]
    next_token = encode_token({"day": last.day.isoformat(), "version": last.version}, filters)
    return rows[:size], next_token


# ---------------------------------------------------------------------------------------
# The scheduler
# ---------------------------------------------------------------------------------------

# The distinct tenants of the placements, one index probe each (a loose index scan over
# ix_placements_tenant_created), with each tenant's first placement time.
_PLACEMENT_TENANTS = text(
    """
    WITH RECURSIVE t(tenant_id) AS (
        SELECT min(tenant_id) FROM matching.placements
        UNION ALL
        SELECT (SELECT min(p.tenant_id) FROM matching.placements p WHERE p.tenant_id > t.tenant_id)
        FROM t WHERE t.tenant_id IS NOT NULL
    )
    SELECT t.tenant_id,
           (SELECT min(p.created_at) FROM matching.placements p WHERE p.tenant_id = t.tenant_id)
    FROM t WHERE t.tenant_id IS NOT NULL
    """
)


@dataclass(frozen=True)
class ReportSchedule:
    default_zone: str = "UTC"
    grace: timedelta = timedelta(minutes=15)
    catch_up_days: int = 31


def last_complete_day(now: datetime, zone: str, grace: timedelta) -> date:
    """The newest day whose report is due at ``now``: the day before the tenant's local
    date ``grace`` ago."""
    return (now - grace).astimezone(ZoneInfo(zone)).date() - timedelta(days=1)


class ReportScheduler:
    """Generates every due report; safe to run in any number of replicas at once."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        schedule: ReportSchedule,
        *,
        metrics: MatcherMetrics | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._sessions = sessions
        self._schedule = schedule
        self._metrics = metrics
        self._clock = clock
        # Per tenant, the newest day known to have a report; spares the database a look
        # at tenants that are up to date (a report, once stored, is never removed before
        # retention, years later).
        self._done_through: dict[str, date] = {}

    async def due(self, now: datetime) -> list[tuple[str, date]]:
        """(tenant, day) pairs whose report is missing, oldest day first per tenant."""
        schedule = self._schedule
        async with self._sessions() as session:
            starts: dict[str, datetime] = {
                tenant: first
                for tenant, first in (await session.execute(_PLACEMENT_TENANTS)).tuples()
                if first is not None
            }
            stored = await all_report_settings(session, schedule.default_zone)
            for tenant, (_, created) in stored.items():
                starts[tenant] = min(starts.get(tenant, created), created)
            wanted: dict[str, tuple[date, date]] = {}
            for tenant, first_seen in starts.items():
                zone = stored[tenant][0].time_zone if tenant in stored else schedule.default_zone
                last = last_complete_day(now, zone, schedule.grace)
                if self._done_through.get(tenant) == last:
                    continue
                first = max(
                    first_seen.astimezone(ZoneInfo(zone)).date(),
                    last - timedelta(days=schedule.catch_up_days - 1),
                )
                if first <= last:
                    wanted[tenant] = (first, last)
                else:
                    self._done_through[tenant] = last
            due: list[tuple[str, date]] = []
            for tenant, (first, last) in sorted(wanted.items()):
                have = set(
                    (
                        await session.execute(
                            select(DailyReportRow.day)
                            .where(
                                DailyReportRow.tenant_id == tenant,
                                DailyReportRow.day.between(first, last),
                            )
                            .distinct()
                        )
                    ).scalars()
                )
                missing = [
                    first + timedelta(days=n)
                    for n in range((last - first).days + 1)
                    if first + timedelta(days=n) not in have
                ]
                if not missing:
                    self._done_through[tenant] = last
                due.extend((tenant, day) for day in missing)
        return due

    async def run_once(self) -> list[tuple[str, date]]:
        """One round: every due report, each in its own transaction; returns those this
        call stored (a report another replica stored first is skipped)."""
        now = self._clock()
        due = await self.due(now)
        made: list[tuple[str, date]] = []
        failed = 0
        for tenant, day in due:
            started = time.perf_counter()
            try:
                async with self._sessions.begin() as session:
                    generated = await generate(
                        session,
                        tenant,
                        day,
                        trigger=ReportTrigger.SCHEDULE,
                        now=now,
                        default_zone=self._schedule.default_zone,
                    )
            except Exception:  # one tenant's failure must not stop the others
                log.warning(
                    "daily report failed",
                    exc_info=True,
                    extra={"tenant_id": tenant, "day": day.isoformat()},
                )
                failed += 1
                if self._metrics is not None:
                    self._metrics.report_failures.inc()
                continue
            if generated is not None:
                made.append((tenant, day))
                if self._metrics is not None:
                    self._metrics.report_generated(
                        ReportTrigger.SCHEDULE, time.perf_counter() - started
                    )
                log.info(
                    "daily report generated",
                    extra={"tenant_id": tenant, "day": day.isoformat(), "version": 1},
                )
        if self._metrics is not None:
            self._metrics.reports_due.set(failed)
        return made

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Rounds now and every ``interval`` seconds until ``stop``; a failed round is
        logged and retried at the next."""
        while not stop.is_set():
            try:
                await self.run_once()
            except Exception:  # a background job must outlive one bad round
                log.warning("daily report round failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
