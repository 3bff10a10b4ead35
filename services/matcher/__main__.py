"""``python -m services.matcher``: the matcher process."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import timedelta

from aicollect import eventloop, logs
from aicollect.db.engine import make_engine, make_sessionmaker
from aicollect.db.retention import retention_loop
from aicollect.handshake import report_ports
from aicollect.rpc.server import wait_for_signal
from aicollect.settings import MATCHER_REQUIRES, MissingSettingError, Settings
from services.matcher.daily_reports import ReportSchedule, ReportScheduler
from services.matcher.metrics import MatcherMetrics
from services.matcher.retention import purge_matcher
from services.matcher.server import build_server

log = logging.getLogger("services.matcher")


async def serve(settings: Settings) -> None:
    assert settings.database_url is not None
    assert settings.internal_token is not None
    engine = make_engine(settings.database_url)
    metrics = MatcherMetrics()
    if settings.matcher_metrics_port:
        metrics.serve(settings.matcher_metrics_port, settings.metrics_host)
    try:
        sessions = make_sessionmaker(engine)
        server = build_server(
            sessions,
            address=settings.matcher_addr,
            internal_token=settings.internal_token.get_secret_value(),
            metrics=metrics,
            report_default_zone=settings.report_default_time_zone,
        )
        await server.start()
        stop = asyncio.Event()
        retention = asyncio.create_task(
            retention_loop(
                lambda: purge_matcher(sessions, settings, purged=metrics.retention_purged),
                settings.retention_interval_seconds,
                stop,
            ),
            name="retention",
        )
        scheduler = ReportScheduler(
            sessions,
            ReportSchedule(
                default_zone=settings.report_default_time_zone,
                grace=timedelta(minutes=settings.report_grace_minutes),
                catch_up_days=settings.report_catch_up_days,
            ),
            metrics=metrics,
        )
        reports = asyncio.create_task(
            scheduler.run(settings.report_tick_seconds, stop), name="daily-reports"
        )
        report_ports(grpc=server.port)
        log.info("matcher serving", extra={"address": settings.matcher_addr, "port": server.port})
        await wait_for_signal()
        stop.set()
        await asyncio.gather(retention, reports)
        log.info("matcher stopping", extra={"grace_s": settings.shutdown_grace_seconds})
        await server.stop(settings.shutdown_grace_seconds)
    finally:
        await engine.dispose()
    log.info("matcher stopped")


def main() -> int:
    settings = Settings.from_env()
    logs.configure("matcher", level=settings.log_level, fmt=settings.log_format)
    try:
        settings.require(*MATCHER_REQUIRES)
    except MissingSettingError as exc:
        print(f"matcher: {exc}", file=sys.stderr)
        return 2
    eventloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
