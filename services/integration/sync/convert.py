"""The sync's domain values <-> IntegrationService messages."""

from __future__ import annotations

from collections.abc import Iterable

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.rpc.convert import timestamp
from aicollect.type.v1.money_pb2 import Money
from services.integration.sync import candidates, confirmations, state
from services.integration.sync.candidate_review import CandidatePage, CandidateView
from services.integration.sync.candidates import DropReason
from services.integration.sync.preview import PreviewPage
from services.integration.sync.rules import Exclusion, StoredRules
from services.integration.sync.service import FULL, INCREMENTAL, BackfillView

PHASES = {
    state.NOT_STARTED: pb.BACKFILL_PHASE_NOT_STARTED,
    state.PENDING: pb.BACKFILL_PHASE_RUNNING,
    state.RUNNING: pb.BACKFILL_PHASE_RUNNING,
    state.COMPLETED: pb.BACKFILL_PHASE_COMPLETED,
    state.FAILED: pb.BACKFILL_PHASE_FAILED,
}
EXCLUSIONS = {
    Exclusion.TOO_FEW_DAYS_PAST_DUE: pb.PLACEMENT_EXCLUSION_REASON_TOO_FEW_DAYS_PAST_DUE,
    Exclusion.BALANCE_BELOW_MINIMUM: pb.PLACEMENT_EXCLUSION_REASON_BALANCE_BELOW_MINIMUM,
    Exclusion.BALANCE_ABOVE_MAXIMUM: pb.PLACEMENT_EXCLUSION_REASON_BALANCE_ABOVE_MAXIMUM,
    Exclusion.CURRENCY_NOT_ALLOWED: pb.PLACEMENT_EXCLUSION_REASON_CURRENCY_NOT_ALLOWED,
    Exclusion.CUSTOMER_EXCLUDED: pb.PLACEMENT_EXCLUSION_REASON_CUSTOMER_EXCLUDED,
    Exclusion.CUSTOMER_NOT_INCLUDED: pb.PLACEMENT_EXCLUSION_REASON_CUSTOMER_NOT_INCLUDED,
}


MODES = {
    candidates.PREVIEW: pb.PLACEMENT_INTAKE_MODE_PREVIEW,
    candidates.AUTOMATIC: pb.PLACEMENT_INTAKE_MODE_AUTOMATIC,
    candidates.CONFIRM_EACH_TIME: pb.PLACEMENT_INTAKE_MODE_CONFIRM_EACH_TIME,
}
MODE_NAMES = {v: k for k, v in MODES.items()}
CANDIDATE_STATUSES = {
    candidates.PENDING: pb.CANDIDATE_STATUS_PENDING,
    candidates.EXCLUDED: pb.CANDIDATE_STATUS_EXCLUDED,
    candidates.CONFIRMING: pb.CANDIDATE_STATUS_CONFIRMING,
    candidates.CONFIRMED: pb.CANDIDATE_STATUS_CONFIRMED,
    candidates.DROPPED: pb.CANDIDATE_STATUS_DROPPED,
}
STATUS_NAMES = {v: k for k, v in CANDIDATE_STATUSES.items()}
DROP_REASONS = {
    DropReason.PAID: pb.CANDIDATE_DROP_REASON_PAID,
    DropReason.VOIDED: pb.CANDIDATE_DROP_REASON_VOIDED,
    DropReason.DELETED: pb.CANDIDATE_DROP_REASON_DELETED,
    DropReason.NO_LONGER_SELECTED: pb.CANDIDATE_DROP_REASON_NO_LONGER_SELECTED,
}


def future_mode(value: pb.PlacementIntakeMode.ValueType) -> str:
    """A request's future mode: "" (keep), or a mode name (PREVIEW is refused later)."""
    return MODE_NAMES.get(value, "")


def candidate_statuses(values: Iterable[pb.CandidateStatus.ValueType]) -> list[str]:
    return [STATUS_NAMES[v] for v in values if v in STATUS_NAMES]


def candidate_pb(c: CandidateView) -> pb.StagedCandidate:
    return pb.StagedCandidate(
        invoice_id=c.invoice_id,
        doc_number=c.doc_number,
        customer_id=c.customer_id,
        customer_display_name=c.customer_name,
        balance=Money(currency_code=c.currency, minor_units=c.balance),
        total_amount=Money(currency_code=c.currency, minor_units=c.total),
        due_date=c.due_date.isoformat(),
        days_past_due=c.days_past_due,
        rules_version=c.rules_version,
        status=CANDIDATE_STATUSES[c.status],
        drop_reason=DROP_REASONS[DropReason(c.drop_reason)]
        if c.drop_reason
        else pb.CANDIDATE_DROP_REASON_UNSPECIFIED,
        status_actor=c.status_actor,
        status_reason=c.status_reason,
        placement_id=c.placement_id,
        stage_time=timestamp(c.created_at),
        update_time=timestamp(c.updated_at),
    )


def candidates_reply(page: CandidatePage) -> pb.ListPlacementCandidatesResponse:
    return pb.ListPlacementCandidatesResponse(
        candidates=[candidate_pb(c) for c in page.candidates],
        next_page_token=page.next_page_token,
        mode=MODES[page.mode],
        totals=[
            pb.CandidateTotal(
                currency_code=t.currency,
                pending_count=t.pending,
                pending_balance_minor_units=t.pending_balance,
                excluded_count=t.excluded,
            )
            for t in page.totals
        ],
        company_date=page.company_date.isoformat(),
        confirmation=confirmation_pb(page.confirmation),
    )


CONFIRMATION_STATES = {
    confirmations.RUNNING: pb.CONFIRMATION_STATE_CONFIRMING,
    confirmations.DONE: pb.CONFIRMATION_STATE_CONFIRMED,
    confirmations.FAILED: pb.CONFIRMATION_STATE_FAILED,
}


def confirmation_pb(c: confirmations.ConfirmationView | None) -> pb.PlacementConfirmation | None:
    if c is None:
        return None
    return pb.PlacementConfirmation(
        confirmation_id=c.confirmation_id,
        state=CONFIRMATION_STATES[c.state],
        total_count=c.total,
        placed_count=c.placed,
        dropped_count=c.dropped,
        remaining_count=c.remaining,
        error=c.error,
    )


def sync_mode(mode: pb.SyncMode.ValueType) -> str:
    return INCREMENTAL if mode == pb.SYNC_MODE_INCREMENTAL else FULL


def backfill_pb(view: BackfillView) -> pb.BackfillProgress:
    return pb.BackfillProgress(
        phase=PHASES.get(view.phase, pb.BACKFILL_PHASE_UNSPECIFIED),
        invoices_seen=view.invoices_seen,
        placements_created=view.placements_created,
        candidates_staged=view.candidates_staged,
        start_time=timestamp(view.start_time),
        finish_time=timestamp(view.finish_time),
        last_error=view.last_error,
    )


def rules_reply(stored: StoredRules) -> pb.GetPlacementRulesResponse:
    return pb.GetPlacementRulesResponse(
        rules=stored.rules.to_pb(),
        version=stored.version,
        update_time=timestamp(stored.update_time),
        update_actor=stored.update_actor,
    )


def preview_reply(page: PreviewPage) -> pb.PreviewPlacementsResponse:
    candidates = []
    for c in page.candidates:
        facts = c.invoice
        candidates.append(
            pb.PlacementCandidate(
                qbo_invoice_id=facts.invoice_id,
                doc_number=facts.doc_number,
                qbo_customer_id=facts.customer_id,
                customer_display_name=facts.customer_name,
                balance=Money(currency_code=facts.currency, minor_units=facts.balance),
                total_amount=Money(currency_code=facts.currency, minor_units=facts.total),
                due_date=facts.due_date.isoformat() if facts.due_date else "",
                days_past_due=c.days_past_due,
                would_place=c.exclusion is None,
                exclusion_reason=(
                    EXCLUSIONS[c.exclusion]
                    if c.exclusion is not None
                    else pb.PLACEMENT_EXCLUSION_REASON_UNSPECIFIED
                ),
            )
        )
    return pb.PreviewPlacementsResponse(
        candidates=candidates,
        next_page_token=page.next_page_token,
        totals=[
            pb.CurrencyTotal(
                currency_code=code,
                candidate_count=total.candidates,
                placed_count=total.placed,
                placed_balance_minor_units=total.placed_balance,
            )
            for code, total in sorted(page.totals.items())
        ],
        company_date=page.company_date.isoformat(),
        rules=page.rules.to_pb(),
    )
