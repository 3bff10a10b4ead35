"""Migration m008_provider_neutral: a matcher database holding the previous schema's data
(placements in every status, payments seen, applications, exclusions, portal payments,
resolutions, double payments, audit rows, outbox rows, stored reports, settings) is moved to
the provider-neutral schema without losing a row or a value, every row QBO's; downgrading
gives the same rows back under the old names.

The database is migrated to the revision before it (``m007_outreach_pauses``, and the
integration heads), filled as the matcher filled it, then upgraded to head.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from alembic import command

from aicollect.db.migrate import alembic_config, upgrade_async
from aicollect.matching.v1 import matching_service_pb2 as pb
from tests.conftest import _admin, _dsn, _with_database

BEFORE = "m007_outreach_pauses"
S = "matching"

# The rename map of the matcher's schema (old -> new), per table.
RENAMED: dict[str, dict[str, str]] = {
    "placements": {
        "realm_id": "company_id",
        "qbo_invoice_id": "invoice_id",
        "qbo_customer_id": "customer_id",
        "resolving_qbo_payment_id": "resolving_payment_id",
        "cause_qbo_payment_id": "cause_payment_id",
        "cause_sync_token": "cause_version",
        "qbo_invoice_sync_token": "invoice_version",
        "qbo_invoice_state": "invoice_state",
        "qbo_invoice_updated_at": "invoice_updated_at",
        "qbo_total_minor_units": "invoice_total_minor_units",
        "qbo_balance_minor_units": "invoice_balance_minor_units",
        "qbo_linked_payment_ids": "invoice_linked_payment_ids",
    },
    "qbo_payments": {
        "realm_id": "company_id",
        "qbo_payment_id": "payment_id",
        "sync_token": "version",
        "qbo_customer_id": "customer_id",
        "qbo_created_at": "provider_created_at",
        "qbo_updated_at": "provider_updated_at",
    },
    "payment_applications": {"qbo_payment_id": "payment_id"},
    "payment_exclusions": {"qbo_payment_id": "payment_id", "sync_token": "version"},
    "portal_payments": {"mirrored_by_qbo_payment_id": "mirrored_by_payment_id"},
    "oob_resolutions": {"qbo_payment_id": "payment_id"},
    "double_payments": {"qbo_payment_id": "payment_id"},
    "audit_events": {},
    "outreach_events": {},
    "daily_reports": {},
    "tenant_report_settings": {},
    "outreach_pauses": {},
}
NEW_TABLE = {"qbo_payments": "payments"}
# Columns the upgrade adds, with the value every existing row gets (by the row's order).
ADDED: dict[str, dict[str, list[Any]]] = {
    "placements": {
        "provider": ["qbo"] * 4,
        # The stored sync tokens' digits ("" is no version yet: 0).
        "invoice_version_sequence": [3, 12, 0, 7],
    },
    "payments": {"provider": ["qbo"] * 2, "version_sequence": [2, 0]},
}
ORDER = {
    "placements": "placement_id",
    "qbo_payments": "qbo_payment_id",
    "payments": "payment_id",
    "payment_applications": "placement_id",
    "payment_exclusions": "placement_id",
    "portal_payments": "portal_payment_id",
    "oob_resolutions": "id",
    "double_payments": "id",
    "audit_events": "id",
    "outreach_events": "id",
    "daily_reports": "id",
    "tenant_report_settings": "tenant_id",
    "outreach_pauses": "pause_id",
}


def _report_body() -> bytes:
    """A stored report as the matcher serialized it (field numbers did not change)."""
    section = pb.CurrencyReconciliation(
        currency_code="USD",
        out_of_band_resolutions=[
            pb.OutOfBandResolutionEntry(
                placement_id="p2", invoice_id="71", doc_number="1071", payment_id="163"
            )
        ],
        possible_double_payments=[
            pb.PossibleDoublePaymentEntry(placement_id="p2", invoice_id="71", payment_id="170")
        ],
    )
    key = pb.DailyReportKey(tenant_id="acme", day="2026-11-20", version=1)
    return pb.DailyReport(key=key, currencies=[section]).SerializeToString()


FILL = f"""
INSERT INTO {S}.placements (placement_id, tenant_id, realm_id, qbo_invoice_id, doc_number,
    qbo_customer_id, debtor, currency_code, original_minor_units, balance_minor_units,
    invoice_date, due_date, status, resolution_reason, review_reason, resolving_qbo_payment_id,
    intake_channel, version, created_at, updated_at, resolved_at, cause_qbo_payment_id,
    cause_sync_token, restore_balance_minor_units, oob_paid_minor_units,
    mirror_pending_minor_units, unseen_paid_minor_units, qbo_invoice_sync_token,
    qbo_invoice_state, qbo_invoice_updated_at, intake_invoice_updated_at,
    qbo_total_minor_units, qbo_balance_minor_units, qbo_linked_payment_ids, review_flag,
    review_flag_reason, flagged_at)
VALUES
 ('p1', 'acme', '9130350', '70', '1070', '58', '{{"display_name": "Red Rock"}}', 'USD', 10000,
  10000, '2026-09-01', '2026-10-01', 'active', '', '', '', 'accounting_sync', 1,
  '2026-11-01T10:00:00Z', '2026-11-01T10:00:00Z', NULL, '', NULL, NULL, 0, 0, 0, '3',
  'active', '2026-10-30T10:00:00Z', '2026-10-30T10:00:00Z', 10000, 10000, '[]', '', '', NULL),
 ('p2', 'acme', '9130350', '71', '1071', '58', '{{}}', 'USD', 5000, 0, NULL, '2026-10-01',
  'resolved_out_of_band', 'paid out-of-band', '', '163', 'accounting_sync', 4,
  '2026-11-01T10:00:00Z', '2026-11-20T10:00:00Z', '2026-11-20T10:00:00Z', '163', '2', 5000,
  5000, 0, 0, '12', 'active', '2026-11-20T09:59:00Z', NULL, 5000, 0, '["163"]',
  'possible_double_payment', 'payment 170 brought 50.00 USD more', '2026-11-20T11:00:00Z'),
 ('p3', 'acme', '9130351', '70', '2070', '9', '{{}}', 'EUR', 700, 700, NULL, '2026-10-01',
  'needs_review', '', 'payment 5 voided', '', 'accounting_sync', 3, '2026-11-02T10:00:00Z',
  '2026-11-21T10:00:00Z', NULL, '5', NULL, 700, 0, 0, 0, '', 'voided', NULL, NULL, 700, 700,
  '[]', '', '', NULL),
 ('p4', 'globex', '9130352', '80', '80', '1', '{{}}', 'USD', 900, 0, NULL, '2026-10-01',
  'closed', 'a credit memo', '', '', 'accounting_sync', 2, '2026-11-03T10:00:00Z',
  '2026-11-22T10:00:00Z', '2026-11-22T10:00:00Z', '', NULL, 900, 0, 100, 0, '7', 'active',
  NULL, NULL, 900, 0, '[]', '', '', NULL);
INSERT INTO {S}.qbo_payments (tenant_id, realm_id, qbo_payment_id, sync_token, state,
    currency_code, total_minor_units, unapplied_minor_units, qbo_customer_id, invoice_amounts,
    credit_memo_ids, paused_placement_ids, qbo_created_at, qbo_updated_at, first_seen_at,
    updated_at)
VALUES
 ('acme', '9130350', '163', '2', 'active', 'USD', 7000, 2000, '58', '{{"71": 5000}}', '[]',
  '["p1"]', '2026-11-20T09:00:00Z', '2026-11-20T09:58:00Z', '2026-11-20T10:00:00Z',
  '2026-11-20T10:00:00Z'),
 ('acme', '9130351', '5', '', 'deleted', 'EUR', 0, 0, '9', '{{}}', '["cm1"]', '[]', NULL,
  NULL, '2026-11-21T10:00:00Z', '2026-11-21T10:00:00Z');
INSERT INTO {S}.payment_applications (placement_id, qbo_payment_id, amount_minor_units,
    counted_minor_units, reflected_minor_units, kind, mirror_portal_payment_id, created_at,
    updated_at)
VALUES ('p2', '163', 5000, 5000, 5000, 'payment', NULL, '2026-11-20T10:00:00Z',
        '2026-11-20T10:00:00Z');
INSERT INTO {S}.payment_exclusions (placement_id, qbo_payment_id, sync_token, excluded_at,
    excluded_by, reason, lifted_at)
VALUES ('p3', '5', '4', '2026-11-21T12:00:00Z', 'dana@support', 'ticket 812', NULL);
INSERT INTO {S}.portal_payments (portal_payment_id, placement_id, tenant_id, currency_code,
    amount_minor_units, fee_minor_units, pay_time, applied_minor_units,
    mirrored_by_qbo_payment_id, recorded_at)
VALUES ('pp1', 'p1', 'acme', 'USD', 2500, 625, '2026-11-19T10:00:00Z', 2500, '160',
        '2026-11-19T10:00:01Z');
INSERT INTO {S}.oob_resolutions (placement_id, tenant_id, qbo_payment_id, currency_code,
    amount_minor_units, resolved_at, restored_at, reclassified_at)
VALUES ('p2', 'acme', '163', 'USD', 5000, '2026-11-20T10:00:00Z', NULL, NULL);
INSERT INTO {S}.double_payments (placement_id, tenant_id, qbo_payment_id, currency_code,
    amount_minor_units, excess_minor_units, unapplied_minor_units, previous_status,
    detected_at)
VALUES ('p2', 'acme', '170', 'USD', 5000, 5000, 0, 'resolved_out_of_band',
        '2026-11-20T11:00:00Z');
INSERT INTO {S}.audit_events (tenant_id, subject_type, subject_id, action, actor, reason,
    details, created_at)
VALUES ('acme', 'placement', 'p2', 'placement.resolved_out_of_band', 'system',
        'payment 163 applied', '{{"qbo_payment_id": "163", "sync_token": "2"}}',
        '2026-11-20T10:00:00Z'),
       (NULL, 'matching_setting', 'qbo_oob_amount_tolerance_cents', 'setting.updated', 'ops',
        'rounding', '{{"old": 1, "new": 5}}', '2026-11-20T12:00:00Z');
INSERT INTO {S}.outreach_events (event_id, placement_id, tenant_id, type, status,
    currency_code, balance_minor_units, reason, created_at, report_day, report_version)
VALUES ('e1', 'p2', 'acme', 'stop', 'resolved_out_of_band', 'USD', 0, 'paid out-of-band',
        '2026-11-20T10:00:00Z', NULL, NULL),
       ('e2', NULL, 'acme', 'report_ready', '', '', 0, '', '2026-11-21T00:00:00Z',
        '2026-11-20', 1);
INSERT INTO {S}.tenant_report_settings (tenant_id, time_zone, contingency_fee_bp,
    oob_fee_treatment, oob_fee_bp, version, created_at, updated_at, updated_by)
VALUES ('acme', 'America/New_York', 2500, 'reduced', 1000, 1, now(), now(), 'ops');
INSERT INTO {S}.outreach_pauses (pause_id, tenant_id, scope, placement_id, company_id,
    customer_id, paused_by, pause_reason, paused_at)
VALUES ('pz1', 'acme', 'debtor', NULL, '9130350', '58', 'dana', 'dispute', now()),
       ('pz2', 'acme', 'placement', 'p1', '', '', 'dana', 'call back', now());
INSERT INTO {S}.settings (key, value, version, updated_by)
VALUES ('qbo_oob_amount_tolerance_cents', '5', 2, 'ops'),
       ('qbo_oob_match_window_minutes', '120', 1, 'ops');
"""


async def _rows(conn: asyncpg.Connection, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(f"SELECT * FROM {S}.{table} ORDER BY {ORDER[table]}")]


async def _snapshot(conn: asyncpg.Connection, tables: dict[str, str]) -> dict[str, Any]:
    snap: dict[str, Any] = {t: await _rows(conn, name) for t, name in tables.items()}
    snap["settings"] = {
        r["key"]: (r["value"], r["version"])
        for r in await conn.fetch(f"SELECT key, value, version FROM {S}.settings")
    }
    return snap


OLD_TABLES = {t: t for t in RENAMED}
NEW_TABLES = {t: NEW_TABLE.get(t, t) for t in RENAMED}


@pytest_asyncio.fixture
async def before(pg_server_url: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """A fresh database at the revision before, filled with the previous schema's rows; and
    their snapshot."""
    name = f"aicollect_mig_{uuid.uuid4().hex[:12]}"
    await _admin(pg_server_url, f'CREATE DATABASE "{name}"')
    url = _with_database(pg_server_url, name)
    try:
        await upgrade_async(url, BEFORE)
        conn = await asyncpg.connect(_dsn(url))
        try:
            await conn.execute(FILL)
            await conn.execute(
                f"INSERT INTO {S}.daily_reports (tenant_id, day, version, time_zone, end_time, "
                "trigger, actor, reason, currency_codes, body, sha256, generated_at) VALUES "
                "('acme', '2026-11-20', 1, 'UTC', '2026-11-21T00:00:00Z', 'schedule', "
                "'system', '', '{USD}', $1, 'abc', '2026-11-21T00:00:05Z')",
                _report_body(),
            )
            snapshot = await _snapshot(conn, OLD_TABLES)
        finally:
            await conn.close()
        yield url, snapshot
    finally:
        await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_provider_neutral_migration_keeps_every_row_as_qbo_and_downgrade_gives_them_back(
    before: tuple[str, dict[str, Any]],
) -> None:
    url, old = before
    await upgrade_async(url)
    conn = await asyncpg.connect(_dsn(url))
    try:
        new = await _snapshot(conn, NEW_TABLES)
        for table, renames in RENAMED.items():
            added = ADDED.get(NEW_TABLE.get(table, table), {})
            expected = [{renames.get(k, k): v for k, v in row.items()} for row in old[table]]
            for column, values in added.items():
                assert [row.pop(column) for row in new[table]] == values, (table, column)
            assert new[table] == expected, table
        # The settings keep their values and versions under the neutral names.
        assert new["settings"] == {
            "oob_amount_tolerance_cents": old["settings"]["qbo_oob_amount_tolerance_cents"],
            "oob_match_window_minutes": old["settings"]["qbo_oob_match_window_minutes"],
        }
        # A stored report still reads, with the neutral field names.
        body = await conn.fetchval(f"SELECT body FROM {S}.daily_reports")
        report = pb.DailyReport.FromString(body)
        entry = report.currencies[0].out_of_band_resolutions[0]
        assert (entry.invoice_id, entry.payment_id) == ("71", "163")
        assert report.currencies[0].possible_double_payments[0].payment_id == "170"
        # The keys are per provider: the same company and invoice ids from Xero are another
        # placement; from QBO again, the same one.
        await conn.execute(
            f"CREATE TEMP TABLE t AS SELECT * FROM {S}.placements WHERE placement_id = 'p1'"
        )
        await conn.execute("UPDATE t SET placement_id = 'x1', provider = 'xero'")
        await conn.execute(f"INSERT INTO {S}.placements SELECT * FROM t")
        await conn.execute("UPDATE t SET placement_id = 'x2', provider = 'qbo'")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(f"INSERT INTO {S}.placements SELECT * FROM t")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                f"UPDATE {S}.payments SET provider = 'sage' WHERE payment_id = '163'"
            )
    finally:
        await conn.close()

    # The old schema cannot hold a Xero row: the downgrade refuses and changes nothing.
    with pytest.raises(RuntimeError, match="other than QBO"):
        await asyncio.to_thread(command.downgrade, alembic_config(url), BEFORE)
    conn = await asyncpg.connect(_dsn(url))
    try:
        assert await conn.fetchval(f"SELECT count(*) FROM {S}.payments") == 2
        await conn.execute(f"DELETE FROM {S}.placements WHERE provider = 'xero'")
    finally:
        await conn.close()
    await asyncio.to_thread(command.downgrade, alembic_config(url), BEFORE)
    conn = await asyncpg.connect(_dsn(url))
    try:
        assert await _snapshot(conn, OLD_TABLES) == old
    finally:
        await conn.close()
