"""The sync's domain values <-> IntegrationService messages."""

from __future__ import annotations

from aicollect.integration.v1 import integration_service_pb2 as pb
from aicollect.rpc.convert import timestamp
from aicollect.type.v1.money_pb2 import Money
from services.integration.sync import state
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


def sync_mode(mode: pb.SyncMode.ValueType) -> str:
    return INCREMENTAL if mode == pb.SYNC_MODE_INCREMENTAL else FULL


def backfill_pb(view: BackfillView) -> pb.BackfillProgress:
    return pb.BackfillProgress(
        phase=PHASES.get(view.phase, pb.BACKFILL_PHASE_UNSPECIFIED),
        invoices_seen=view.invoices_seen,
        placements_created=view.placements_created,
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
