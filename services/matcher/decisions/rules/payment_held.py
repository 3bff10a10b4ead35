"""The rows for a payment's line that come before anything is counted.

=========================================  ==============================================
row                                        verdict
=========================================  ==============================================
excluded by a restore, unchanged since     ``EXCLUDED_AFTER_RESTORE`` (nothing counted)
excluded by a restore, changed since       the exclusion is lifted (audited); matched again
currency differs                           paused pending review
=========================================  ==============================================

A restore excludes the payment behind a wrong resolution or closure until it changes in the
provider's books (:func:`excluded_after_restore`, :func:`lift_exclusion`); a line in
another currency cannot be compared with what is owed, so a human decides
(:func:`currency_differs`).
"""

from __future__ import annotations

from typing import Any

from services.matcher.decisions.outcomes import ACTION_EXCLUSION_LIFTED, REVIEW, Verdict
from services.matcher.decisions.rules.common import (
    Change,
    audit_entry,
    settle,
    unchanged,
    version_name,
)
from services.matcher.decisions.rules.payment_facts import PaymentFacts, track_invoice
from services.matcher.decisions.values import (
    Application,
    AuditEntry,
    Context,
    Effect,
    Exclusion,
    Ledger,
    Record,
    evolve,
)
from services.matcher.domain import Outcome, Status, format_money


def excluded_after_restore(
    ledger: Ledger,
    app: Application,
    exclusion: Exclusion,
    facts: PaymentFacts,
    amount: int,
    ctx: Context,
) -> Effect:
    """The payment stays excluded until it changes in the provider's books: nothing is
    counted, only the invoice balance the provider shows follows (``ledger``: the
    placement as it stands)."""
    p, app = track_invoice(ledger.placement, app, amount, ctx)
    if exclusion.version is None:
        exclusion = evolve(exclusion, version=facts.token)
    app = evolve(app, counted_minor_units=0)
    return unchanged(
        evolve(ledger, placement=p).with_application(app).with_exclusion(exclusion),
        p.invoice_id,
        Outcome.EXCLUDED_AFTER_RESTORE,
        f"{facts.describe()} was excluded from this placement by a restore and has not "
        f"changed in {facts.books} since; ignored",
    )


def lift_exclusion(
    ledger: Ledger,
    exclusion: Exclusion,
    facts: PaymentFacts,
    details: dict[str, Any],
    ctx: Context,
) -> tuple[Ledger, AuditEntry]:
    """The payment changed since the restore excluded it: the exclusion is lifted and the
    payment matched again (``ledger``: the placement as it stands)."""
    lifted = ledger.with_exclusion(evolve(exclusion, lifted_at=ctx.now))
    entry = audit_entry(
        ledger.placement,
        ACTION_EXCLUSION_LIFTED,
        f"{facts.describe()} changed in {facts.books} after the restore "
        f"({version_name(facts.provider)} {exclusion.version} -> {facts.token}); "
        "it is matched again",
        details,
    )
    return lifted, entry


def currency_differs(
    ledger: Ledger,
    app: Application,
    facts: PaymentFacts,
    amount: int,
    details: dict[str, Any],
    ctx: Context,
    records: list[Record],
) -> Effect:
    """Amounts in another currency cannot be compared: an active placement is paused for
    review, any other left as it is (``ledger``: the placement as it stands)."""
    p = ledger.placement
    invoice_id = p.invoice_id
    app = evolve(app, amount_minor_units=amount, updated_at=ctx.now)
    reason = (
        f"{facts.describe()} of {format_money(amount, facts.currency)} is in "
        f"{facts.currency}, the placement is in {p.currency_code}; review before "
        "outreach resumes"
    )
    if Status(p.status) is Status.ACTIVE:
        change = Change(
            Verdict.PAUSED_CURRENCY_MISMATCH,
            reason,
            review_reason=reason,
            cause=(facts.id, facts.token),
            details=details,
        )
        return settle(ledger.with_application(app), change, ctx, invoice_id, records)
    return unchanged(
        ledger.with_application(app),
        invoice_id,
        Outcome.PAUSED_CURRENCY_MISMATCH
        if Status(p.status) in REVIEW
        else Outcome.DUPLICATE_NO_CHANGE,
        f"{reason} (placement already {p.status})",
        records,
    )
