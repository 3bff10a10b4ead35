"""A stored daily reconciliation report (``aicollect.matching.v1.DailyReport``) as CSV: one
row per entry and per total, amounts as decimals of the row's currency (``40.00``), times in
UTC (ISO 8601). The columns are described in docs/daily-reports.md."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from google.protobuf.timestamp_pb2 import Timestamp

from aicollect.currency import decimal_amount
from aicollect.matching.v1 import matching_service_pb2 as pb

COLUMNS = (
    "day",
    "version",
    "time_zone",
    "currency",
    "record",
    "placement_id",
    "invoice_id",
    "invoice_number",
    "payment_id",
    "time",
    "amount",
    "fee",
    "net",
    "fee_treatment",
    "restored",
    "excess",
    "unapplied",
    "previous_status",
)
# A cell a spreadsheet would read as a formula (CSV injection): shown as text instead.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def _time(stamp: Timestamp) -> str:
    return stamp.ToJsonString() if stamp.seconds or stamp.nanos else ""


def _rows(report: pb.DailyReport) -> Iterator[dict[str, str]]:
    head = {
        "day": report.key.day,
        "version": str(report.key.version),
        "time_zone": report.time_zone,
    }
    for section in report.currencies:
        code = section.currency_code

        def money(minor_units: int, code: str = code) -> str:
            return decimal_amount(minor_units, code)

        base = {**head, "currency": code}
        for p in section.portal_payments:
            yield base | {
                "record": "portal_payment",
                "placement_id": p.placement_id,
                "invoice_id": _text(p.invoice_id),
                "invoice_number": _text(p.doc_number),
                "payment_id": _text(p.portal_payment_id),
                "time": _time(p.pay_time),
                "amount": money(p.amount_minor_units),
                "fee": money(p.fee_minor_units),
                "net": money(p.net_minor_units),
            }
        for o in section.out_of_band_resolutions:
            yield base | {
                "record": "out_of_band_resolution",
                "placement_id": o.placement_id,
                "invoice_id": _text(o.invoice_id),
                "invoice_number": _text(o.doc_number),
                "payment_id": _text(o.payment_id),
                "time": _time(o.resolve_time),
                "amount": money(o.amount_minor_units),
                "fee": money(o.fee_minor_units),
                "fee_treatment": pb.OutOfBandFeeTreatment.Name(o.fee_treatment)
                .removeprefix("OUT_OF_BAND_FEE_TREATMENT_")
                .lower(),
                "restored": "true" if o.restored else "false",
            }
        for d in section.possible_double_payments:
            yield base | {
                "record": "possible_double_payment",
                "placement_id": d.placement_id,
                "invoice_id": _text(d.invoice_id),
                "invoice_number": _text(d.doc_number),
                "payment_id": _text(d.payment_id),
                "time": _time(d.detect_time),
                "amount": money(d.amount_minor_units),
                "excess": money(d.excess_minor_units),
                "unapplied": money(d.unapplied_minor_units),
                "previous_status": pb.PlacementStatus.Name(d.previous_status)
                .removeprefix("PLACEMENT_STATUS_")
                .lower(),
            }
        t = section.totals
        yield base | {
            "record": "portal_payments_total",
            "amount": money(t.portal_amount_minor_units),
            "fee": money(t.portal_fee_minor_units),
            "net": money(t.portal_net_minor_units),
        }
        yield base | {
            "record": "out_of_band_total",
            "amount": money(t.out_of_band_amount_minor_units),
            "fee": money(t.out_of_band_fee_minor_units),
        }
        yield base | {"record": "fees_total", "fee": money(t.total_fee_minor_units)}


def report_csv(report: pb.DailyReport) -> str:
    """The report as CSV text (RFC 4180: CRLF line ends, a header row)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, restval="", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(_rows(report))
    return out.getvalue()
