"""The dashboard's reconciliation reports through the gateway: JSON and CSV, the tenant from
the JWT, over the real matcher (in process) on a real PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from google.protobuf.field_mask_pb2 import FieldMask

from aicollect.matching.v1 import matching_admin_service_pb2 as apb
from aicollect.matching.v1 import matching_service_pb2 as pb
from services.matcher.daily_reports import ReportSchedule, ReportScheduler
from tests.helpers.dashboard import bearer, dashboard
from tests.services.matcher.conftest import Matcher, placement_input, qbo_payment

__all__ = ["dashboard"]  # the fixture

GRACE = timedelta(minutes=15)


async def _a_day_of_activity(matcher: Matcher) -> str:
    """acme's day: a portal payment, an out-of-band payment; its report, generated."""
    await matcher.admin.UpdateTenantReportSettings(
        apb.UpdateTenantReportSettingsRequest(
            tenant_id="acme",
            settings=apb.TenantReportSettings(
                fee_terms=pb.FeeTerms(
                    contingency_fee_basis_points=2_500,
                    out_of_band_fee_treatment=pb.OUT_OF_BAND_FEE_TREATMENT_REDUCED,
                    out_of_band_fee_basis_points=1_000,
                )
            ),
            update_mask=FieldMask(paths=["fee_terms"]),
            actor="dana@support",
            reason="pilot agreement",
        )
    )
    portal, _ = await matcher.place(
        placement_input("70", 10_000, doc_number='=HYPERLINK("http://evil.example")'),
        placement_input("71", 6_000),
    )
    await matcher.portal(portal.placement_id, "pp-1", 4_000)
    await matcher.pay(qbo_payment("B", [("71", 6_000)]))
    day = datetime.now(UTC).date()
    tomorrow = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    scheduler = ReportScheduler(
        matcher.sessions, ReportSchedule(grace=GRACE), clock=lambda: tomorrow + GRACE
    )
    assert await scheduler.run_once() == [("acme", day)]
    return day.isoformat()


async def test_the_report_as_json_and_csv(
    dashboard: tuple[TestClient[Any, Any], Matcher],
) -> None:
    client, matcher = dashboard
    day = await _a_day_of_activity(matcher)

    listed = await client.get("/v1/reconciliation-reports", headers=bearer("acme"))
    assert listed.status == 200
    body = await listed.json()
    assert [(r["key"]["day"], r["key"]["version"], r["latest"]) for r in body["reports"]] == [
        (day, 1, True)
    ]
    assert body["next_page_token"] == ""  # zero values are present

    resp = await client.get(f"/v1/reconciliation-reports/{day}", headers=bearer("acme"))
    assert resp.status == 200
    report = await resp.json()
    assert report["key"] == {"tenant_id": "acme", "day": day, "version": 1}
    assert report["fee_terms"] == {
        "contingency_fee_basis_points": 2500,
        "out_of_band_fee_treatment": "OUT_OF_BAND_FEE_TREATMENT_REDUCED",
        "out_of_band_fee_basis_points": 1000,
    }
    assert (report["fee_terms_set"], report["reason"], report["actor"]) == (True, "", "system")
    (usd,) = report["currencies"]
    assert usd["possible_double_payments"] == []
    (portal,) = usd["portal_payments"]
    assert (portal["amount_minor_units"], portal["fee_minor_units"], portal["net_minor_units"]) == (
        "4000",
        "1000",
        "3000",
    )  # Proto3 JSON writes int64 as strings
    (oob,) = usd["out_of_band_resolutions"]
    assert (oob["fee_minor_units"], oob["restored"]) == ("600", False)
    assert usd["totals"]["total_fee_minor_units"] == "1600"

    same = await client.get(f"/v1/reconciliation-reports/{day}?version=1", headers=bearer("acme"))
    assert await same.json() == report

    resp = await client.get(f"/v1/reconciliation-reports/{day}.csv", headers=bearer("acme"))
    assert resp.status == 200
    assert resp.content_type == "text/csv"
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="reconciliation-{day}-v1.csv"'
    )
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    summary = [
        (r["record"], r["invoice_id"], r["amount"], r["fee"], r["net"], r["fee_treatment"])
        for r in rows
    ]
    assert summary == [
        ("portal_payment", "70", "40.00", "10.00", "30.00", ""),
        ("out_of_band_resolution", "71", "60.00", "6.00", "", "reduced"),
        ("portal_payments_total", "", "40.00", "10.00", "30.00", ""),
        ("out_of_band_total", "", "60.00", "6.00", "", ""),
        ("fees_total", "", "", "16.00", "", ""),
    ]
    assert {(r["day"], r["version"], r["time_zone"], r["currency"]) for r in rows} == {
        (day, "1", "UTC", "USD")
    }
    # A doc number a spreadsheet would run as a formula stays text.
    assert rows[0]["invoice_number"] == '\'=HYPERLINK("http://evil.example")'


async def test_only_the_callers_tenant_and_clear_errors(
    dashboard: tuple[TestClient[Any, Any], Matcher],
) -> None:
    client, matcher = dashboard
    day = await _a_day_of_activity(matcher)

    other = await client.get("/v1/reconciliation-reports", headers=bearer("globex"))
    assert (await other.json())["reports"] == []
    for path in (f"/v1/reconciliation-reports/{day}", f"/v1/reconciliation-reports/{day}.csv"):
        resp = await client.get(path, headers=bearer("globex"))
        assert resp.status == 404
        assert (await resp.json())["error"]["reason"] == "REPORT_NOT_FOUND"
        assert (await client.get(path)).status == 401
    resp = await client.get(f"/v1/reconciliation-reports/{day}?version=2", headers=bearer("acme"))
    assert resp.status == 404
    resp = await client.get(f"/v1/reconciliation-reports/{day}?version=-1", headers=bearer("acme"))
    assert resp.status == 400
    resp = await client.get("/v1/reconciliation-reports/2026-02-30", headers=bearer("acme"))
    assert resp.status == 400
    assert (await resp.json())["error"]["reason"] == "FIELD_INVALID"
    resp = await client.get("/v1/reconciliation-reports?page_token=garbage", headers=bearer("acme"))
    assert resp.status == 400
