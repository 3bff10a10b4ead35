"""Retention keeps the webhook inbox and the outreach outbox bounded.

    .venv/bin/python -m bench.retention [--days 3] [--rate 5] [--keep-days 1]

Simulates ``--days`` days of traffic at ``--rate`` webhook events (and as many outreach
events) a second on a real PostgreSQL (embedded, or ``AICOLLECT_BENCH_DATABASE_URL``): every
simulated hour an hour of processed inbox rows and outbox events is written with that hour's
timestamps, then both services' retention jobs run as of that simulated time, keeping
``--keep-days`` days. Prints the row counts over time (growing during the first
``--keep-days``, then flat) and the purge time, and writes ``bench/results/retention.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from aicollect.db.embedded import EmbeddedPostgres
from aicollect.db.engine import make_engine, make_sessionmaker
from aicollect.db.migrate import upgrade_async
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.settings import Settings
from aicollect.type.v1 import money_pb2
from bench._stack import write_result
from services.integration.retention import purge_integration
from services.matcher import facts_in, matching
from services.matcher.retention import purge_matcher

INBOX_SQL = """
INSERT INTO integration.webhook_inbox (event_id, dedupe_key, tenant_id, realm_id, entity,
    entity_id, operation, occurred_at, received_at, status, processed_at, payload, attempts,
    last_error)
SELECT 'e' || $1 || '-' || n, 'k' || $1 || '-' || n, 'acme', '1', 'Payment', n::text, 'Update',
    at, at, 'done', at, '{}'::jsonb, 1, ''
FROM generate_series(1, $4::int) AS n,
    LATERAL (SELECT $2::timestamptz + n * $3::float8 * interval '1 microsecond' AS at) AS t
"""
OUTBOX_SQL = """
INSERT INTO matching.outreach_events (event_id, placement_id, tenant_id, type, status,
    currency_code, balance_minor_units, reason, created_at)
SELECT 'o' || $1 || '-' || n, $5, 'acme', 'balance_changed', 'active', 'USD', 100, '',
    $2::timestamptz + n * $3::float8 * interval '1 microsecond'
FROM generate_series(1, $4::int) AS n
"""


async def _placement(sessions_url: str) -> str:
    engine = make_engine(sessions_url, pool_size=2)
    try:
        request = pb.UpsertPlacementsRequest(
            tenant_id="acme",
            provider=pb.PROVIDER_QBO,
            company_id="1",
            placements=[
                pb.PlacementInput(
                    invoice_id="1",
                    doc_number="1001",
                    customer_id="1",
                    debtor=pb.DebtorContact(display_name="Bench Debtor"),
                    total_amount=money_pb2.Money(currency_code="USD", minor_units=10_000),
                    balance=money_pb2.Money(currency_code="USD", minor_units=10_000),
                    invoice_date="2026-09-01",
                    due_date="2026-10-01",
                    version="0",
                )
            ],
        )
        async with make_sessionmaker(engine).begin() as session:
            (result,) = await matching.upsert_placements(
                session, "acme", "qbo", "1", facts_in.placements_in(request)
            )
        return str(result.placement_id)
    finally:
        await engine.dispose()


async def simulate(url: str, days: int, rate: float, keep_days: float) -> dict[str, object]:
    await upgrade_async(url)
    placement_id = await _placement(url)
    settings = Settings.from_env(
        {
            "AICOLLECT_RETENTION_INBOX_DAYS": str(keep_days),
            "AICOLLECT_RETENTION_OUTBOX_DAYS": str(keep_days),
        }
    )
    engine = make_engine(url, pool_size=2)
    sessions = make_sessionmaker(engine)
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    per_hour = int(rate * 3600)
    spacing_us = 3600e6 / per_hour
    start = datetime(2026, 11, 1, tzinfo=UTC)
    samples: list[dict[str, float]] = []
    purge_seconds: list[float] = []
    try:
        for hour in range(days * 24):
            at = start + timedelta(hours=hour)
            batch = f"{hour}"
            await conn.execute(INBOX_SQL, batch, at, spacing_us, per_hour)
            await conn.execute(OUTBOX_SQL, batch, at, spacing_us, per_hour, placement_id)
            now = at + timedelta(hours=1)
            began = time.perf_counter()
            await purge_integration(sessions, settings, now=now)
            await purge_matcher(sessions, settings, now=now)
            purge_seconds.append(time.perf_counter() - began)
            inbox = await conn.fetchval("SELECT count(*) FROM integration.webhook_inbox")
            outbox = await conn.fetchval("SELECT count(*) FROM matching.outreach_events")
            samples.append({"hour": hour + 1, "inbox_rows": inbox, "outbox_rows": outbox})
            if (hour + 1) % 6 == 0:
                print(f"  after {hour + 1:3d} h: inbox {inbox:>9,} rows, outbox {outbox:>9,} rows")
    finally:
        await conn.close()
        await engine.dispose()
    bound = int(per_hour * 24 * keep_days)
    tail = [s for s in samples if s["hour"] > 24 * keep_days + 1]
    return {
        "days": days,
        "events_per_second": rate,
        "keep_days": keep_days,
        "rows_written_per_table": per_hour * days * 24,
        "expected_bound_rows": bound,
        "max_inbox_rows_after_first_window": max((s["inbox_rows"] for s in tail), default=0),
        "max_outbox_rows_after_first_window": max((s["outbox_rows"] for s in tail), default=0),
        "purge_seconds_p50": sorted(purge_seconds)[len(purge_seconds) // 2],
        "purge_seconds_max": max(purge_seconds),
        "samples": samples,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second")
    parser.add_argument("--keep-days", type=float, default=1.0)
    args = parser.parse_args()
    server_url = os.environ.get("AICOLLECT_BENCH_DATABASE_URL")
    with tempfile.TemporaryDirectory() as tmp:
        embedded = None
        if not server_url:
            embedded = EmbeddedPostgres(Path(tmp) / "pg")
            embedded.start()
            server_url = embedded.url
        name = f"aicollect_retention_{uuid.uuid4().hex[:8]}"
        admin_dsn = server_url.replace("postgresql+asyncpg://", "postgresql://")
        admin = await asyncpg.connect(admin_dsn)
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = server_url.rsplit("/", 1)[0] + "/" + name
        try:
            print(
                f"retention: {args.days} days at {args.rate:g} events/s, keeping "
                f"{args.keep_days:g} day(s)"
            )
            result = await simulate(url, args.days, args.rate, args.keep_days)
        finally:
            admin = await asyncpg.connect(admin_dsn)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()
            if embedded is not None:
                embedded.stop()
    print(
        f"bound {result['expected_bound_rows']:,} rows per table; after the first window the "
        f"inbox held at most {result['max_inbox_rows_after_first_window']:,} and the outbox "
        f"{result['max_outbox_rows_after_first_window']:,}; purge per simulated hour p50 "
        f"{result['purge_seconds_p50']:.2f} s, max {result['purge_seconds_max']:.2f} s"
    )
    print(f"written to {write_result('retention', result)}")


if __name__ == "__main__":
    asyncio.run(main())
