"""The rows for what a payment's line, once counted, does to the placement.

=========================================  ==============================================
row                                        verdict
=========================================  ==============================================
a resolving payment reduced or removed     flagged for review (outreach stays stopped)
nothing to count                           no change (or a resolution corrected/closed)
clears the balance                         resolved out of band / closed by a credit memo
anything else                              partial payment, edit applied, balance updated
=========================================  ==============================================

:func:`decide_counted` takes them in that order. A placement cleared by credit memos alone
is closed, never paid out of band; cleared by a credit after money was paid out of band, it
is paid out of band for that money, whichever came first.
"""

from __future__ import annotations

from services.matcher.decisions.outcomes import (
    KIND_CREDIT_MEMO,
    KIND_PAYMENT,
    PAID_OUT_OF_BAND,
    TERMINAL,
    Verdict,
)
from services.matcher.decisions.rules.common import (
    Change,
    money,
    money_payment,
    payment_label,
    reclassify,
    resolution_recorded,
    settle,
)
from services.matcher.decisions.rules.payment_facts import (
    CountedLine,
    applier,
    credit_memo_reason,
)
from services.matcher.decisions.values import (
    Context,
    Effect,
    Record,
    ResolutionsChanged,
    evolve,
)
from services.matcher.domain import Status


def decide_counted(line: CountedLine, records: list[Record], ctx: Context) -> Effect:
    """The first of this module's rows that applies to the counted ``line``."""
    tol = ctx.tolerance
    ledger = line.ledger
    p = ledger.placement
    invoice_id = p.invoice_id
    facts, kind, status = line.facts, line.kind, line.status
    delta, new_balance, details = line.delta, line.new_balance, line.details
    removed = line.removed
    left = line.left

    # A payment that resolved the placement is voided, deleted or reduced: a human decides.
    if (status in TERMINAL and new_balance > tol and delta < 0) or (
        removed and p.cause_payment_id == facts.id and status in TERMINAL
    ):
        verb = facts.state.value if removed else "reduced"
        reason = (
            f"{applier(facts, kind)}, applied to invoice {invoice_id} after which the "
            f"placement was {status.value}, was {verb} in {facts.books}; {left} owed again. "
            "Outreach stays stopped until a human reviews it"
        )
        if status is Status.RESOLVED_OUT_OF_BAND:
            # The payment behind the resolution no longer stands: no out-of-band fee for it.
            records.append(reclassify(p))
        change = Change(
            Verdict.FLAGGED_FOR_REVIEW,
            reason,
            balance=new_balance,
            review_reason=reason,
            cause=(facts.id, facts.token),
            details=details,
        )
        return settle(ledger, change, ctx, invoice_id, records)

    if delta == 0:
        return _nothing_counted(line, ctx, records)

    verb = "applied" if delta > 0 else "took back"
    detail = (
        f"{applier(facts, kind)} {verb} {money(p, abs(delta))} "
        f"{'to' if delta > 0 else 'from'} invoice {invoice_id}; {left} left"
    )
    if delta > 0 and new_balance <= tol and status not in TERMINAL:
        # Cleared by a credit after money was paid out of band: paid out of band (for the
        # money paid), whichever came first; only a balance cleared without money closes.
        if kind == KIND_CREDIT_MEMO and p.oob_paid_minor_units <= tol:
            reason = credit_memo_reason(facts, invoice_id)
            change = Change(
                Verdict.CLOSED_BALANCE_ZERO,
                f"{detail}; {reason}",
                balance=new_balance,
                resolution_reason=reason,
                cause=(facts.id, facts.token),
                details=details,
            )
            return settle(ledger, change, ctx, invoice_id, records)
        payer = facts.id if kind == KIND_PAYMENT else money_payment(ledger)
        if kind == KIND_CREDIT_MEMO:
            detail = f"{detail}; {credit_memo_reason(facts, invoice_id, partial=True)}"
        change = Change(
            Verdict.PAID_OUT_OF_BAND,
            detail,
            balance=new_balance,
            resolution_reason=PAID_OUT_OF_BAND,
            resolving_payment_id=payer,
            cause=(facts.id, facts.token),
            details=details,
        )
        effect = settle(ledger, change, ctx, invoice_id, records)
        assert effect.ledger is not None
        recorded = resolution_recorded(effect.ledger.placement, payer)
        return evolve(effect, records=(*effect.records, recorded))

    if line.edit and (line.prior_amount != line.amount or removed):
        verdict = Verdict.EDIT_APPLIED
    elif kind == KIND_CREDIT_MEMO:
        verdict = Verdict.BALANCE_UPDATED
        detail = f"{detail}; {credit_memo_reason(facts, invoice_id, partial=True)}"
    else:
        verdict = Verdict.PARTIAL_PAYMENT
    change = Change(verdict, detail, balance=new_balance, details=details)
    return settle(ledger, change, ctx, invoice_id, records)


def _nothing_counted(line: CountedLine, ctx: Context, records: list[Record]) -> Effect:
    """The payment's version counts nothing new: no change, unless the invoice told us of
    it first and it turns out to be a credit memo (the resolution is corrected, or the
    placement closed when no money was paid out of band)."""
    ledger, facts, kind, details = line.ledger, line.facts, line.kind, line.details
    reflected_already, shown = line.reflected_already, line.shown
    p = ledger.placement
    invoice_id = p.invoice_id
    status = Status(p.status)
    # Any payment the invoice showed before it was read, not only the last one named as
    # the resolver: when several unread links cleared the balance, each may be a credit.
    credit_behind_resolution = (
        reflected_already and status is Status.RESOLVED_OUT_OF_BAND and kind == KIND_CREDIT_MEMO
    )
    if credit_behind_resolution and p.oob_paid_minor_units > ctx.tolerance:
        # The invoice told us first; the payment shows the last part was a credit memo,
        # but money was paid out of band before: still paid out of band, for that money.
        payer = money_payment(ledger)
        records.append(
            ResolutionsChanged(
                p.placement_id,
                values={"amount_minor_units": p.oob_paid_minor_units, "payment_id": payer},
            )
        )
        detail = (
            f"{credit_memo_reason(facts, invoice_id, partial=True)}; the rest was "
            f"paid out of band ({money(p, p.oob_paid_minor_units)}, "
            f"{payment_label(p.provider, payer)})"
        )
        change = Change(
            Verdict.RESOLUTION_CORRECTED,
            detail,
            resolving_payment_id=payer,
            details={**details, "oob_paid_minor_units": p.oob_paid_minor_units},
        )
        return settle(ledger, change, ctx, invoice_id, records)
    if credit_behind_resolution:
        # The invoice told us first; the payment shows it was a credit memo.
        reason = credit_memo_reason(facts, invoice_id)
        records.append(reclassify(p))
        change = Change(
            Verdict.CLOSED_BALANCE_ZERO,
            reason,
            resolution_reason=reason,
            resolving_payment_id="",
            details=details,
        )
        return settle(ledger, change, ctx, invoice_id, records)
    if shown:
        detail = (
            f"{facts.describe()} version {facts.token} was already shown in invoice "
            f"{invoice_id}'s balance (the invoice version read before it); nothing changed"
        )
    elif reflected_already or (line.previous is not None and line.fresh):
        detail = (
            f"{facts.describe()} was already reflected in invoice {invoice_id}'s balance; "
            "nothing changed"
        )
    else:
        detail = f"{facts.describe()} changes nothing for invoice {invoice_id}"
    # An edit already shown is recorded (what the payment counts changed, not the balance).
    change = Change(Verdict.PAYMENT_NO_CHANGE, detail, details=details, audit=shown)
    return settle(ledger, change, ctx, invoice_id, records)
