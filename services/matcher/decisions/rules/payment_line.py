"""The table's rows for one payment's amount on one placed invoice.

:func:`payment_line` works out what the payment's version counts against the placement
(only the difference from what was counted before, never twice), then hands over to the
first row that applies, in this order:

=========================================  ==============================================
row                                        verdict
=========================================  ==============================================
excluded by a restore, unchanged since     ``EXCLUDED_AFTER_RESTORE`` (nothing counted)
currency differs                           paused pending review
more than owed on a stopped placement      possible double payment (flag; nothing resumes)
the QBO record of a portal payment         mirrors the portal payment (counted once)
a resolving payment reduced or removed     flagged for review (outreach stays stopped)
nothing to count                           no change (or a resolution corrected/closed)
clears the balance                         resolved out of band / closed by a credit memo
anything else                              partial payment, edit applied, balance updated
=========================================  ==============================================

The first two rows, which come before anything is counted, are ``payment_held``'s; the
portal payment's record is ``payment_mirror``'s; the last four are ``payment_counted``'s.
The count is here: the payment's first application to the placement (:func:`baseline`), an
edit the invoice version we hold already shows (:func:`invoice_shows_edit`), and the
double-payment flag of a line that brings more than was owed. The payment as the rows read
it, and its line once counted, are ``payment_facts``'s.
"""

from __future__ import annotations

from typing import Any

from services.matcher.decisions.outcomes import (
    ACTION_DOUBLE_PAYMENT_REMOVED,
    KIND_CREDIT_MEMO,
    KIND_PAYMENT,
)
from services.matcher.decisions.rules.common import (
    audit_entry,
    double_payment_change,
    exclusion_holds,
    flag_double_payment,
    settle,
)
from services.matcher.decisions.rules.payment_counted import decide_counted
from services.matcher.decisions.rules.payment_facts import (
    CountedLine,
    PaymentFacts,
    track_invoice,
)
from services.matcher.decisions.rules.payment_held import (
    currency_differs,
    excluded_after_restore,
    lift_exclusion,
)
from services.matcher.decisions.rules.payment_mirror import (
    find_portal_mirror,
    payment_mirrors_portal,
)
from services.matcher.decisions.values import (
    Application,
    Context,
    Effect,
    Ledger,
    PlacementState,
    PortalState,
    Record,
    evolve,
)
from services.matcher.domain import EntityState, Status


def baseline(
    p: PlacementState, facts: PaymentFacts, previous: int | None, amount: int, ctx: Context
) -> tuple[PlacementState, Application]:
    """The first application of a payment to a placement, with what is already reflected.

    A payment the latest invoice version links (the intake's version until another one is
    applied) is already part of the balance we hold: it is counted without changing it.
    """
    already = 0
    counted = 0
    if previous is not None:
        already = counted = previous
    elif facts.id in p.invoice_linked_payment_ids:
        already = counted = amount
        pending = p.mirror_pending_minor_units
        if pending > 0 and pending + ctx.tolerance >= amount:
            # The invoice's drop was presumed to be a portal payment's mirror, not counted.
            p = evolve(p, mirror_pending_minor_units=max(0, pending - amount))
            counted = 0
        else:
            p = evolve(p, unseen_paid_minor_units=max(0, p.unseen_paid_minor_units - amount))
    # Any other payment is new to the balance: the intake's and each later invoice version's
    # links (QBO's own record of what its balance includes) decide, never timestamps, which
    # have one-second resolution and cannot order a payment made in the intake second.
    app = Application(
        placement_id=p.placement_id,
        payment_id=facts.id,
        amount_minor_units=already,
        counted_minor_units=counted,
        reflected_minor_units=already,
        kind=KIND_PAYMENT,
        mirror_portal_payment_id=None,
        created_at=ctx.now,
        updated_at=ctx.now,
    )
    return p, app


def invoice_shows_edit(
    p: PlacementState, facts: PaymentFacts, amount: int, prior: int, counted: int
) -> bool:
    """Whether the invoice version we hold (linking the payment) already shows this version
    of a payment applied before (``prior``: the amount it applied; ``counted``: what the
    placement counted of it): it was made after the payment's version (QBO's
    ``LastUpdatedTime``), or in the same second (a payment's edit and the invoice version it
    makes share it) when the edit lowers the payment: never dun for more than that version
    says (had it predated the edit, the version the edit made will say so). The payment's
    own amounts say which way it was edited, not what the placement counted of it, which is
    less when the balance had no room for all of it.
    """
    when = facts.payment.last_updated
    invoice_when = p.invoice_updated_at
    if (
        facts.state is not EntityState.ACTIVE
        or facts.id not in p.invoice_linked_payment_ids
        or when is None
        or invoice_when is None
        or amount == counted
    ):
        return False
    return when < invoice_when or (when == invoice_when and amount < prior)


def payment_line(ledger: Ledger, facts: PaymentFacts, previous: int | None, ctx: Context) -> Effect:
    """One payment's amount for one placed invoice, following the rules table."""
    tol = ctx.tolerance
    p = ledger.placement
    invoice_id = p.invoice_id
    amount = facts.amounts.get(invoice_id, 0)
    existing = ledger.applications.get(facts.id)
    fresh = existing is None
    if existing is None:
        p, app = baseline(p, facts, previous, amount, ctx)
    else:
        app = existing
    # A line that first appears now but which the invoice balance already reflects.
    reflected_already = fresh and app.reflected_minor_units > 0
    prior_amount = app.amount_minor_units
    records: list[Record] = []

    facts_details: dict[str, Any] = {
        "payment_id": facts.id,
        "provider_version": facts.token,
        "payment_state": facts.state.value,
        "line_amount_minor_units": amount,
        "previous_line_amount_minor_units": prior_amount,
        "payment_currency_code": facts.currency,
    }
    if facts.credit_memo_ids:
        facts_details["credit_memo_ids"] = list(facts.credit_memo_ids)
    if facts.state is EntityState.ACTIVE and facts.payment.unapplied > 0:
        facts_details["unapplied_minor_units"] = facts.payment.unapplied

    # Restore: the payment stays excluded until QBO changes it again.
    exclusion = ledger.active_exclusion(facts.id)
    if exclusion is not None and fresh:
        # Excluded before it was read: the restore already took back what it had counted.
        app = evolve(app, counted_minor_units=0)
    if exclusion is not None:
        standing = evolve(ledger, placement=p)
        if exclusion_holds(exclusion, facts.token, facts.payment.last_updated):
            return excluded_after_restore(standing, app, exclusion, facts, amount, ctx)
        ledger, lifted = lift_exclusion(standing, exclusion, facts, facts_details, ctx)
        records.append(lifted)

    # Currency mismatch: amounts cannot be compared; a human decides.
    if amount > 0 and facts.currency != p.currency_code:
        standing = evolve(ledger, placement=p)
        return currency_differs(standing, app, facts, amount, facts_details, ctx, records)

    # The QBO record of one of our portal payments: nothing is counted twice.
    newly_mirrored: PortalState | None = None
    if (
        (fresh and previous is None)
        and app.mirror_portal_payment_id is None
        and amount > 0
        and not facts.funded_by_credit
        and facts.currency == p.currency_code
    ):
        newly_mirrored = find_portal_mirror(ledger, amount, facts.time, ctx)
        if newly_mirrored is not None:
            app = evolve(app, mirror_portal_payment_id=newly_mirrored.portal_payment_id)
            newly_mirrored = evolve(newly_mirrored, mirrored_by_payment_id=facts.id)

    oob = p.oob_paid_minor_units
    kind = KIND_CREDIT_MEMO if facts.funded_by_credit else KIND_PAYMENT
    if app.kind != kind:
        if app.kind == KIND_PAYMENT and app.mirror_portal_payment_id is None:
            oob -= app.counted_minor_units
        app = evolve(app, kind=kind)
        if kind == KIND_PAYMENT and app.mirror_portal_payment_id is None:
            oob += app.counted_minor_units
    mirror = app.mirror_portal_payment_id is not None

    shown = (
        exclusion is None
        and not fresh
        and not mirror
        and invoice_shows_edit(p, facts, amount, app.amount_minor_units, app.counted_minor_units)
    )
    if shown:
        # The invoice version we hold already shows this version of the payment: its balance
        # change counted the edit; what the payment counts follows, the balance does not.
        if kind == KIND_PAYMENT:
            oob += amount - app.counted_minor_units
        app = evolve(app, counted_minor_units=amount, reflected_minor_units=amount)

    if mirror:
        target = 0
        if newly_mirrored is not None and app.counted_minor_units:
            oob -= app.counted_minor_units
    else:
        target = min(amount, p.balance_minor_units + app.counted_minor_units)
    delta = target - app.counted_minor_units  # > 0 reduces what is owed
    if kind == KIND_PAYMENT and not mirror:
        oob += delta
    p = evolve(p, oob_paid_minor_units=oob)
    app = evolve(app, counted_minor_units=target)
    p, app = track_invoice(p, app, amount, ctx)
    ledger = evolve(ledger, placement=p).with_application(app)
    new_balance = p.balance_minor_units - delta
    status = Status(p.status)
    details = {**facts_details, "applied_minor_units": delta, "counted_minor_units": target}
    # What this version brings beyond what the placement owed (a double or over payment).
    brought = amount - prior_amount
    excess = brought - delta if kind == KIND_PAYMENT and not mirror and brought > 0 else 0
    flagged = ""
    if excess > 0:
        details["excess_minor_units"] = excess
    if excess > 0 and (status is not Status.ACTIVE or excess > tol):
        flag = flag_double_payment(
            ledger,
            ctx,
            payment_id=facts.id,
            amount=brought,
            excess=excess,
            unapplied=facts.payment.unapplied,
            previous=status,
            owed=p.balance_minor_units,
        )
        if flag is not None:
            ledger, flagged = flag.ledger, flag.reason
            records.extend(flag.records)
    line = CountedLine(
        ledger=ledger,
        facts=facts,
        kind=kind,
        amount=amount,
        prior_amount=prior_amount,
        delta=delta,
        new_balance=new_balance,
        status=status,
        details=details,
        fresh=fresh,
        previous=previous,
        reflected_already=reflected_already,
        shown=shown,
    )
    p = ledger.placement
    if (
        line.removed
        and prior_amount > 0
        and p.review_flag
        and facts.id in ledger.double_payment_ids
    ):
        # Recorded as a possible double payment, now voided or deleted: said in the audit;
        # the flag stays until a human clears it.
        records.append(
            audit_entry(
                p,
                ACTION_DOUBLE_PAYMENT_REMOVED,
                f"{facts.label()}, recorded as a possible double payment, was "
                f"{facts.state.value} in {facts.books}; the review flag stays until a human "
                "clears it",
                details,
            )
        )
    if flagged and status is not Status.ACTIVE:
        # Already stopped (or paused) by something else: recorded and flagged, nothing resumes.
        change = double_payment_change(flagged, new_balance, details, delta != 0)
        return settle(ledger, change, ctx, invoice_id, records)
    if mirror:
        return payment_mirrors_portal(line, newly_mirrored, records, ctx)
    return decide_counted(line, records, ctx)
