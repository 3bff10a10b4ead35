"""Protobuf <-> domain for MatchingService: request validation (INVALID_ARGUMENT naming the
field) and the messages built from stored rows and decisions."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf.json_format import ParseDict
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import Row

from aicollect.errors import InvalidArgument
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.rpc.convert import from_timestamp, timestamp
from aicollect.type.v1 import money_pb2
from services.matcher.domain import (
    Decision,
    EntityState,
    EventType,
    FeeTerms,
    FeeTreatment,
    IntakeChannel,
    LinkType,
    Money,
    Outcome,
    PortalPaymentIn,
    Report,
    ReportTrigger,
    ReviewFlag,
    Source,
    Status,
    UpsertOutcome,
    UpsertResult,
)
from services.matcher.models import AuditEvent, DailyReportRow, OutreachEventRow, Placement
from services.matcher.outbox import encode_cursor

MAX_BATCH = 1000
MAX_ID_LENGTH = 200
_CURRENCY = re.compile(r"[A-Z]{3}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

STATUS_TO_PB = {
    Status.ACTIVE: pb.PLACEMENT_STATUS_ACTIVE,
    Status.PAUSED_PENDING_REVIEW: pb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW,
    Status.RESOLVED_OUT_OF_BAND: pb.PLACEMENT_STATUS_RESOLVED_OUT_OF_BAND,
    Status.RESOLVED_PAID_PORTAL: pb.PLACEMENT_STATUS_RESOLVED_PAID_PORTAL,
    Status.CLOSED: pb.PLACEMENT_STATUS_CLOSED,
    Status.NEEDS_REVIEW: pb.PLACEMENT_STATUS_NEEDS_REVIEW,
}
STATUS_FROM_PB: dict[int, Status] = {v: k for k, v in STATUS_TO_PB.items()}
OUTCOME_TO_PB = {
    outcome: pb.DecisionOutcome.Value(f"DECISION_OUTCOME_{outcome.name}") for outcome in Outcome
}
EVENT_TO_PB = {
    event: pb.OutreachEventType.Value(f"OUTREACH_EVENT_TYPE_{event.name}") for event in EventType
}
UPSERT_TO_PB = {
    outcome: pb.UpsertOutcome.Value(f"UPSERT_OUTCOME_{outcome.name}") for outcome in UpsertOutcome
}
INTAKE_TO_PB = {
    channel: pb.IntakeChannel.Value(f"INTAKE_CHANNEL_{channel.name}") for channel in IntakeChannel
}
PROVIDER_FROM_PB = {pb.PROVIDER_QBO: "qbo", pb.PROVIDER_XERO: "xero"}
PROVIDER_TO_PB: dict[str, pb.Provider.ValueType] = {v: k for k, v in PROVIDER_FROM_PB.items()}
STATE_FROM_PB = {
    pb.ENTITY_STATE_ACTIVE: EntityState.ACTIVE,
    pb.ENTITY_STATE_VOIDED: EntityState.VOIDED,
    pb.ENTITY_STATE_DELETED: EntityState.DELETED,
}
LINK_FROM_PB = {
    pb.LINKED_TXN_TYPE_INVOICE: LinkType.INVOICE,
    pb.LINKED_TXN_TYPE_CREDIT_MEMO: LinkType.CREDIT_MEMO,
    pb.LINKED_TXN_TYPE_PAYMENT: LinkType.PAYMENT,
    pb.LINKED_TXN_TYPE_JOURNAL_ENTRY: LinkType.JOURNAL_ENTRY,
    pb.LINKED_TXN_TYPE_OTHER: LinkType.OTHER,
}
SOURCE_FROM_PB = {
    pb.CHANGE_SOURCE_WEBHOOK: "webhook",
    pb.CHANGE_SOURCE_CDC: "cdc",
    pb.CHANGE_SOURCE_BACKFILL: "backfill",
    pb.CHANGE_SOURCE_REPLAY: "replay",
}
TREATMENT_FROM_PB = {
    pb.OUT_OF_BAND_FEE_TREATMENT_FULL: FeeTreatment.FULL,
    pb.OUT_OF_BAND_FEE_TREATMENT_REDUCED: FeeTreatment.REDUCED,
    pb.OUT_OF_BAND_FEE_TREATMENT_WAIVED: FeeTreatment.WAIVED,
}
TREATMENT_TO_PB = {v: k for k, v in TREATMENT_FROM_PB.items()}
FLAG_TO_PB = {
    ReviewFlag.NONE: pb.REVIEW_FLAG_UNSPECIFIED,
    ReviewFlag.POSSIBLE_DOUBLE_PAYMENT: pb.REVIEW_FLAG_POSSIBLE_DOUBLE_PAYMENT,
}
FLAG_FROM_PB: dict[int, ReviewFlag] = {v: k for k, v in FLAG_TO_PB.items() if k}
TRIGGER_TO_PB = {
    trigger: pb.ReportTrigger.Value(f"REPORT_TRIGGER_{trigger.name}") for trigger in ReportTrigger
}


# ---------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------


def required_id(value: str, field: str) -> str:
    value = value.strip()
    if not value:
        raise InvalidArgument(f"{field} is required", field=field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgument(f"{field} is longer than {MAX_ID_LENGTH} characters", field=field)
    return value


def _enum(value: int, mapping: dict[Any, Any], field: str) -> Any:
    if value not in mapping:
        raise InvalidArgument(f"{field} must be set to a known value", field=field)
    return mapping[value]


def _currency(code: str, field: str) -> str:
    if not _CURRENCY.fullmatch(code):
        raise InvalidArgument(
            f"{field} must be a three-letter ISO 4217 code in upper case", field=field
        )
    return code


def money(
    message: money_pb2.Money, field: str, *, present: bool = True, positive: bool = False
) -> Money:
    if not present:
        raise InvalidArgument(f"{field} is required", field=field)
    currency = _currency(message.currency_code, f"{field}.currency_code")
    if message.minor_units < 0 or (positive and message.minor_units == 0):
        rule = "positive" if positive else "zero or more"
        raise InvalidArgument(f"{field}.minor_units must be {rule}", field=f"{field}.minor_units")
    return Money(currency, message.minor_units)


def calendar_date(value: str, field: str, *, required: bool) -> date | None:
    if not value:
        if required:
            raise InvalidArgument(f"{field} is required (YYYY-MM-DD)", field=field)
        return None
    try:
        if not _DATE.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument(f"{field} must be a date as YYYY-MM-DD", field=field) from None


def _time(message: Any, name: str, field: str, *, required: bool = False) -> datetime | None:
    if not message.HasField(name):
        if required:
            raise InvalidArgument(f"{field} is required", field=field)
        return None
    ts: Timestamp = getattr(message, name)
    return from_timestamp(ts)


def _source(value: int, event_id: str) -> Source:
    channel = _enum(value, SOURCE_FROM_PB, "source")
    return Source(channel, event_id.strip()[:MAX_ID_LENGTH])


# ---------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------


def portal_payment_in(request: pb.RecordPortalPaymentRequest) -> PortalPaymentIn:
    placement_id = required_id(request.placement_id, "placement_id")
    portal_id = required_id(request.portal_payment_id, "portal_payment_id")
    amount = money(request.amount, "amount", present=request.HasField("amount"), positive=True)
    pay_time = _time(request, "pay_time", "pay_time", required=True)
    assert pay_time is not None
    fee: int | None = None
    if request.HasField("fee_amount"):
        fee_money = money(request.fee_amount, "fee_amount")
        if fee_money.currency != amount.currency:
            raise InvalidArgument(
                "fee_amount.currency_code must be the amount's currency",
                field="fee_amount.currency_code",
            )
        if fee_money.minor_units > amount.minor_units:
            raise InvalidArgument(
                "fee_amount must not exceed amount", field="fee_amount.minor_units"
            )
        fee = fee_money.minor_units
    return PortalPaymentIn(placement_id, portal_id, amount, pay_time, fee)


def restore_target(
    request: pb.RestorePlacementRequest | pb.ClearReviewFlagRequest,
) -> tuple[str, int]:
    placement_id = required_id(request.placement_id, "placement_id")
    if request.expected_version <= 0:
        raise InvalidArgument(
            "expected_version is required: the version of the placement you reviewed",
            field="expected_version",
        )
    return placement_id, request.expected_version


def statuses_filter(values: list[int]) -> list[Status] | None:
    if not values:
        return None
    known = set(pb.PlacementStatus.values())
    if any(v not in known for v in values):
        raise InvalidArgument("statuses holds an unknown status", field="statuses")
    # PLACEMENT_STATUS_UNSPECIFIED matches nothing.
    return sorted({STATUS_FROM_PB[v] for v in values if v in STATUS_FROM_PB})


def review_flags_filter(values: list[int]) -> list[ReviewFlag] | None:
    if not values:
        return None
    if any(v not in FLAG_FROM_PB for v in values):
        raise InvalidArgument(
            "review_flags holds an unknown flag or REVIEW_FLAG_UNSPECIFIED", field="review_flags"
        )
    return sorted({FLAG_FROM_PB[v] for v in values})


MAX_REASON_FILTER = 200


def resolution_reasons_filter(values: list[str]) -> list[str] | None:
    """Exact resolution reasons to list; None (no filter) when there are none."""
    if not values:
        return None
    if any(not v.strip() or len(v) > MAX_REASON_FILTER for v in values):
        raise InvalidArgument(
            f"resolution_reasons holds an empty reason or one longer than "
            f"{MAX_REASON_FILTER} characters",
            field="resolution_reasons",
        )
    return sorted({v.strip() for v in values})


def time_zone(value: str, field: str) -> str:
    zone = value.strip()
    try:
        if not zone:
            raise ValueError(zone)
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidArgument(
            f"{field} {zone!r} is not an IANA time zone (for example America/New_York)",
            field=field,
        ) from None
    return zone


def fee_terms_in(terms: pb.FeeTerms, field: str) -> FeeTerms:
    """Validated fee terms: rates within 0..10000 basis points, a known treatment."""
    for name in ("contingency_fee_basis_points", "out_of_band_fee_basis_points"):
        value = getattr(terms, name)
        if not 0 <= value <= 10_000:
            raise InvalidArgument(
                f"{field}.{name} must be between 0 and 10000", field=f"{field}.{name}"
            )
    treatment: FeeTreatment = _enum(
        terms.out_of_band_fee_treatment, TREATMENT_FROM_PB, f"{field}.out_of_band_fee_treatment"
    )
    return FeeTerms(
        terms.contingency_fee_basis_points, treatment, terms.out_of_band_fee_basis_points
    )


def fee_terms_pb(terms: FeeTerms | None) -> pb.FeeTerms | None:
    if terms is None:
        return None
    return pb.FeeTerms(
        contingency_fee_basis_points=terms.contingency_bp,
        out_of_band_fee_treatment=TREATMENT_TO_PB[terms.oob_treatment],
        out_of_band_fee_basis_points=terms.oob_reduced_bp,
    )


def report_request(request: pb.GetReconciliationReportRequest) -> tuple[str, date, str, FeeTerms]:
    tenant = required_id(request.tenant_id, "tenant_id")
    day = calendar_date(request.day, "day", required=True)
    assert day is not None
    zone = time_zone(request.time_zone or "UTC", "time_zone")
    if not request.HasField("fee_terms"):
        raise InvalidArgument("fee_terms is required", field="fee_terms")
    return tenant, day, zone, fee_terms_in(request.fee_terms, "fee_terms")


# ---------------------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------------------


def _money_pb(value: Money | None) -> money_pb2.Money | None:
    if value is None:
        return None
    return money_pb2.Money(currency_code=value.currency, minor_units=value.minor_units)


def placement_pb(p: Placement | Row[Any]) -> pb.Placement:
    """A placement as the ORM or a Core statement read it (same attribute names)."""
    return pb.Placement(
        placement_id=p.placement_id,
        tenant_id=p.tenant_id,
        company_id=p.company_id,
        provider=PROVIDER_TO_PB.get(p.provider, pb.PROVIDER_UNSPECIFIED),
        invoice_id=p.invoice_id,
        doc_number=p.doc_number,
        customer_id=p.customer_id,
        debtor=ParseDict(p.debtor, pb.DebtorContact(), ignore_unknown_fields=True),
        original_amount=money_pb2.Money(
            currency_code=p.currency_code, minor_units=p.original_minor_units
        ),
        balance=money_pb2.Money(currency_code=p.currency_code, minor_units=p.balance_minor_units),
        invoice_date=p.invoice_date.isoformat() if p.invoice_date else "",
        due_date=p.due_date.isoformat() if p.due_date else "",
        status=STATUS_TO_PB[Status(p.status)],
        resolution_reason=p.resolution_reason,
        review_reason=p.review_reason,
        resolving_payment_id=p.resolving_payment_id,
        intake_channel=INTAKE_TO_PB[IntakeChannel(p.intake_channel)],
        version=p.version,
        create_time=timestamp(p.created_at),
        update_time=timestamp(p.updated_at),
        resolve_time=timestamp(p.resolved_at),
        review_flag=FLAG_TO_PB[ReviewFlag(p.review_flag)],
        review_flag_reason=p.review_flag_reason,
        flag_time=timestamp(p.flagged_at),
    )


def decision_pb(d: Decision) -> pb.PlacementDecision:
    return pb.PlacementDecision(
        placement_id=d.placement_id,
        invoice_id=d.invoice_id,
        outcome=OUTCOME_TO_PB[d.outcome],
        status=STATUS_TO_PB[d.status] if d.status else pb.PLACEMENT_STATUS_UNSPECIFIED,
        balance=_money_pb(d.balance),
        applied_amount=_money_pb(d.applied),
        outreach_event_type=EVENT_TO_PB[d.event] if d.event else pb.OUTREACH_EVENT_TYPE_UNSPECIFIED,
        detail=d.detail,
    )


def upsert_result_pb(r: UpsertResult) -> pb.UpsertResult:
    return pb.UpsertResult(
        invoice_id=r.invoice_id,
        placement_id=r.placement_id,
        outcome=UPSERT_TO_PB[r.outcome],
    )


def outreach_event_pb(row: OutreachEventRow) -> pb.OutreachEvent:
    if row.type == EventType.REPORT_READY:
        assert row.report_day is not None
        assert row.report_version is not None
        return pb.OutreachEvent(
            cursor=encode_cursor(row.id),
            event_id=row.event_id,
            tenant_id=row.tenant_id,
            type=pb.OUTREACH_EVENT_TYPE_REPORT_READY,
            reason=row.reason,
            create_time=timestamp(row.created_at),
            report=pb.DailyReportKey(
                tenant_id=row.tenant_id,
                day=row.report_day.isoformat(),
                version=row.report_version,
            ),
        )
    return pb.OutreachEvent(
        cursor=encode_cursor(row.id),
        event_id=row.event_id,
        placement_id=row.placement_id or "",
        tenant_id=row.tenant_id,
        type=EVENT_TO_PB[EventType(row.type)],
        status=STATUS_TO_PB[Status(row.status)],
        balance=money_pb2.Money(
            currency_code=row.currency_code, minor_units=row.balance_minor_units
        ),
        reason=row.reason,
        create_time=timestamp(row.created_at),
    )


def _detail_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def audit_event_pb(row: AuditEvent) -> pb.AuditEvent:
    return pb.AuditEvent(
        event_id=str(row.id),
        tenant_id=row.tenant_id or "",
        placement_id=row.subject_id if row.subject_type == "placement" else "",
        actor=row.actor,
        action=row.action,
        reason=row.reason,
        details={key: _detail_value(value) for key, value in (row.details or {}).items()},
        create_time=timestamp(row.created_at),
    )


def currencies_pb(report: Report) -> list[pb.CurrencyReconciliation]:
    """The report's sections with their totals (the one place totals are summed)."""
    sections = []
    for section in report.sections:
        totals = pb.ReconciliationTotals(
            portal_payment_count=len(section.portal),
            portal_amount_minor_units=sum(e.amount for e in section.portal),
            portal_fee_minor_units=sum(e.fee for e in section.portal),
            portal_net_minor_units=sum(e.net for e in section.portal),
            out_of_band_resolution_count=len(section.out_of_band),
            out_of_band_amount_minor_units=sum(
                e.amount for e in section.out_of_band if not e.restored
            ),
            out_of_band_fee_minor_units=sum(e.fee for e in section.out_of_band),
        )
        totals.total_fee_minor_units = (
            totals.portal_fee_minor_units + totals.out_of_band_fee_minor_units
        )
        sections.append(
            pb.CurrencyReconciliation(
                currency_code=section.currency,
                portal_payments=[
                    pb.PortalPaymentEntry(
                        portal_payment_id=e.portal_payment_id,
                        placement_id=e.placement_id,
                        invoice_id=e.invoice_id,
                        doc_number=e.doc_number,
                        pay_time=timestamp(e.pay_time),
                        amount_minor_units=e.amount,
                        fee_minor_units=e.fee,
                        net_minor_units=e.net,
                    )
                    for e in section.portal
                ],
                out_of_band_resolutions=[
                    pb.OutOfBandResolutionEntry(
                        placement_id=e.placement_id,
                        invoice_id=e.invoice_id,
                        doc_number=e.doc_number,
                        payment_id=e.payment_id,
                        resolve_time=timestamp(e.resolve_time),
                        amount_minor_units=e.amount,
                        fee_treatment=TREATMENT_TO_PB[e.treatment],
                        fee_minor_units=e.fee,
                        restored=e.restored,
                    )
                    for e in section.out_of_band
                ],
                totals=totals,
                possible_double_payments=[
                    pb.PossibleDoublePaymentEntry(
                        placement_id=e.placement_id,
                        invoice_id=e.invoice_id,
                        doc_number=e.doc_number,
                        payment_id=e.payment_id,
                        detect_time=timestamp(e.detect_time),
                        amount_minor_units=e.amount,
                        excess_minor_units=e.excess,
                        unapplied_minor_units=e.unapplied,
                        previous_status=STATUS_TO_PB[e.previous_status],
                    )
                    for e in section.double_payments
                ],
            )
        )
    return sections


def report_pb(report: Report) -> pb.GetReconciliationReportResponse:
    return pb.GetReconciliationReportResponse(
        tenant_id=report.tenant_id,
        day=report.day.isoformat(),
        time_zone=report.time_zone,
        start_time=timestamp(report.start),
        end_time=timestamp(report.end),
        currencies=currencies_pb(report),
    )


def daily_report_pb(
    report: Report,
    version: int,
    terms: FeeTerms | None,
    generated_at: datetime,
    trigger: ReportTrigger,
    actor: str,
    reason: str,
) -> pb.DailyReport:
    """A report as stored. Without fee terms, out-of-band entries name no treatment."""
    currencies = currencies_pb(report)
    if terms is None:
        for section in currencies:
            for entry in section.out_of_band_resolutions:
                entry.fee_treatment = pb.OUT_OF_BAND_FEE_TREATMENT_UNSPECIFIED
    return pb.DailyReport(
        key=pb.DailyReportKey(
            tenant_id=report.tenant_id, day=report.day.isoformat(), version=version
        ),
        time_zone=report.time_zone,
        start_time=timestamp(report.start),
        end_time=timestamp(report.end),
        fee_terms=fee_terms_pb(terms),
        fee_terms_set=terms is not None,
        generate_time=timestamp(generated_at),
        trigger=TRIGGER_TO_PB[trigger],
        actor=actor,
        reason=reason,
        currencies=currencies,
    )


def daily_report_summary_pb(row: DailyReportRow, latest: bool) -> pb.DailyReportSummary:
    return pb.DailyReportSummary(
        key=pb.DailyReportKey(
            tenant_id=row.tenant_id, day=row.day.isoformat(), version=row.version
        ),
        time_zone=row.time_zone,
        generate_time=timestamp(row.generated_at),
        trigger=TRIGGER_TO_PB[ReportTrigger(row.trigger)],
        actor=row.actor,
        reason=row.reason,
        latest=latest,
        currency_codes=row.currency_codes,
    )
