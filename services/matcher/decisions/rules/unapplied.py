"""The table's rows for unapplied money (a payment applied to no invoice).

Unapplied money from a customer that covers what one of its active placements owes (at
least the balance, within the tolerance) may well be that placement's payment: the
placement is paused pending review, never resolved on this evidence and never resumed
automatically. Only the amount and the customer decide, so the rule gives the same answer
whether the payment, the placement's fall in balance or the placement itself comes first:
it runs when the payment is read (:func:`pause_for_unapplied`), whenever a balance falls
(:func:`pause_if_unapplied_covers`) and when a placement is created
(:func:`pause_new_placements`: a placement whose customer's unapplied money is already
known starts paused).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from services.matcher.decisions.outcomes import Verdict
from services.matcher.decisions.rules.common import (
    Change,
    exclusion_holds,
    money,
    payment_label,
    settle,
    unchanged,
)
from services.matcher.decisions.rules.payment_facts import PaymentFacts
from services.matcher.decisions.values import Context, Effect, Ledger, SeenPayment, evolve
from services.matcher.domain import EntityState, Outcome, Status, format_money


def pause_unapplied(
    ledger: Ledger,
    payment_id: str,
    token: str,
    unapplied: int,
    currency: str,
    customer_id: str,
    what: str,
    ctx: Context,
) -> Effect:
    p = ledger.placement
    reason = (
        f"{what} from customer {customer_id} has {format_money(unapplied, currency)} "
        f"unapplied, at least what this placement's invoice is owed "
        f"({money(p, p.balance_minor_units)}): a payment likely exists. "
        "Review before outreach resumes"
    )
    change = Change(
        Verdict.PAUSED_UNAPPLIED_PAYMENT,
        reason,
        review_reason=reason,
        cause=(payment_id, token),
        details={
            "payment_id": payment_id,
            "provider_version": token,
            "unapplied_minor_units": unapplied,
            "payment_currency_code": currency,
            "customer_id": customer_id,
        },
    )
    return settle(ledger, change, ctx)


def pause_for_unapplied(
    candidates: Sequence[Ledger], facts: PaymentFacts, ctx: Context
) -> list[Effect]:
    """An unapplied payment from a customer whose active placements it covers (at least
    their balance): pause pending review (a likely payment exists); never resolve on this
    evidence. A placement's exclusion of the payment, when the payment changed since the
    restore, is lifted (an effect without a decision)."""
    tol = ctx.tolerance
    unapplied = facts.payment.unapplied
    active = [
        ledger
        for ledger in candidates
        if Status(ledger.placement.status) is Status.ACTIVE
        and ledger.placement.currency_code == facts.currency
    ]
    effects: list[Effect] = []
    eligible: list[Ledger] = []
    for ledger in active:
        exclusion = ledger.active_exclusion(facts.id)
        if exclusion is not None:
            if exclusion_holds(exclusion, facts.token, facts.payment.last_updated):
                effects.append(
                    unchanged(
                        ledger,
                        "",
                        Outcome.EXCLUDED_AFTER_RESTORE,
                        f"{facts.describe()} was excluded from this placement by a restore "
                        f"and has not changed in {facts.books} since; ignored",
                    )
                )
                continue
            ledger = ledger.with_exclusion(evolve(exclusion, lifted_at=ctx.now))
            effects.append(Effect(None, ledger))  # the exclusion lifted; no answer
        eligible.append(ledger)
    # Unapplied money that covers what a placement is owed may well be its payment (also
    # when it is more: an overpayment, or several invoices paid at once); when in doubt,
    # pause. Only the amount and the customer decide, so the order in which payments are
    # read cannot change the outcome (see pause_if_unapplied_covers).
    for ledger in eligible:
        if ledger.placement.balance_minor_units <= unapplied + tol:
            effects.append(
                pause_unapplied(
                    ledger,
                    facts.id,
                    facts.token,
                    unapplied,
                    facts.currency,
                    facts.payment.customer_id,
                    facts.describe(),
                    ctx,
                )
            )
    return effects


def pause_if_unapplied_covers(
    ledger: Ledger, payments: Iterable[SeenPayment], ctx: Context
) -> Effect | None:
    """An active placement whose balance fell (or that was just decided) is paused when an
    unapplied payment already seen from its customer covers what is left: the same rule as
    when the unapplied payment is read, whichever of the two the matcher learns first.
    ``payments`` are the customer's payments seen, in the database's order of ids."""
    p = ledger.placement
    if Status(p.status) is not Status.ACTIVE or not p.customer_id:
        return None
    for record in payments:
        if not (
            record.tenant_id == p.tenant_id
            and record.company_id == p.company_id
            and record.customer_id == p.customer_id
            and record.state == EntityState.ACTIVE.value
            and record.currency_code == p.currency_code
            and record.unapplied_minor_units >= p.balance_minor_units - ctx.tolerance
        ):
            continue
        if record.unapplied_minor_units <= 0 or record.invoice_amounts.get(p.invoice_id):
            continue  # a payment applied to this invoice was decided as such
        exclusion = ledger.active_exclusion(record.payment_id)
        if exclusion is not None and exclusion_holds(
            exclusion, record.version, record.provider_updated_at
        ):
            continue
        return pause_unapplied(
            ledger,
            record.payment_id,
            record.version,
            record.unapplied_minor_units,
            record.currency_code,
            record.customer_id,
            payment_label(record.provider, record.payment_id),
            ctx,
        )
    return None


def pause_new_placements(ledgers: Iterable[Ledger], ctx: Context) -> list[Effect]:
    """Placements just created (active, at their invoice's balance): one whose customer's
    unapplied money already seen covers that balance is paused pending review at once,
    with the same audit entry and PAUSE event as when the payment is read after it. So
    outreach never starts on money the customer may already have paid, whichever the
    matcher learns of first."""
    effects: list[Effect] = []
    for ledger in ledgers:
        effect = pause_if_unapplied_covers(ledger, ledger.unapplied, ctx)
        if effect is not None:
            effects.append(effect)
    return effects
