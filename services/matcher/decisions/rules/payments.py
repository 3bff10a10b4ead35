"""A QBO payment read, across every placement it concerns.

:func:`payment_order` says whether the version is new; a version already applied (or an
older one) is a replay (:func:`replay`) and changes nothing. A new version goes through
:func:`decide_payment`: a payment gone before it was read (:func:`unread_payment_gone`),
each placed invoice it applies to (``payment_line``), its unapplied money
(``unapplied``), and finally the unapplied-money check on every placement whose balance
fell. It returns every decision, the effects in the order they are written, and the
payment's record as the matcher keeps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.matcher.decisions.outcomes import Verdict
from services.matcher.decisions.rules.common import (
    Change,
    money,
    payment_label,
    reclassify,
    report,
    settle,
    version_order,
)
from services.matcher.decisions.rules.payment_facts import PaymentFacts, payment_facts
from services.matcher.decisions.rules.payment_line import payment_line
from services.matcher.decisions.rules.unapplied import (
    pause_for_unapplied,
    pause_if_unapplied_covers,
)
from services.matcher.decisions.values import (
    Context,
    Effect,
    Ledger,
    PlacementState,
    SeenPayment,
    evolve,
)
from services.matcher.domain import (
    Decision,
    EntityState,
    Outcome,
    PaymentIn,
    Status,
    format_money,
    provider_label,
)


@dataclass(frozen=True)
class PaymentDecided:
    """Everything one payment read decides: answers, effects in write order, the record."""

    decisions: tuple[Decision, ...]
    effects: tuple[Effect, ...]
    seen: SeenPayment


def payment_order(seen: SeenPayment, payment: PaymentIn, first_sight: bool) -> int:
    """1 when the version is new to the matcher; 0 the same again; -1 older."""
    if first_sight:
        return 1
    return version_order(
        (seen.version, seen.version_sequence),
        seen.state,
        (payment.version, payment.version_sequence),
        payment.state,
    )


@dataclass(frozen=True)
class PaymentScope:
    """Which placements of the payment's company a read concerns (the snapshot locks
    them; ``covers`` says the same of one placement, for an in-memory store)."""

    invoice_ids: tuple[str, ...] = ()
    # Its customer's active placements, when it carries unapplied money.
    customer_id: str = ""
    # Those it paused before.
    paused_ids: tuple[str, ...] = ()
    # Placements resolved out of band by this payment, read now for the first time gone.
    gone_cause: str = ""

    def covers(self, p: PlacementState) -> bool:
        return (
            p.invoice_id in self.invoice_ids
            or (
                bool(self.customer_id)
                and p.customer_id == self.customer_id
                and p.status == Status.ACTIVE.value
            )
            or p.placement_id in self.paused_ids
        )

    def gone(self, p: PlacementState) -> bool:
        """Resolved by an invoice version on this payment before it was read, and the
        payment, read now for the first time, does not apply to that invoice: deleted,
        voided, or active but no longer on it (a credit taken off an invoice that was then
        voided, money moved to another invoice)."""
        return (
            bool(self.gone_cause)
            and p.cause_payment_id == self.gone_cause
            and p.status == Status.RESOLVED_OUT_OF_BAND.value
            and p.invoice_id not in self.invoice_ids
        )


def replay_scope(seen: SeenPayment) -> PaymentScope:
    """What a replay reports on (read, not locked)."""
    return PaymentScope(
        invoice_ids=tuple(seen.invoice_amounts), paused_ids=seen.paused_placement_ids
    )


def payment_scope(payment: PaymentIn, seen: SeenPayment, first_sight: bool) -> PaymentScope:
    """What a new version of a payment concerns."""
    gone_cause = payment.payment_id if first_sight else ""
    if payment.state is EntityState.DELETED and first_sight:
        return PaymentScope(gone_cause=gone_cause)
    facts = payment_facts(payment, seen, first_sight)
    unapplied = payment.state is EntityState.ACTIVE and payment.unapplied > 0
    return PaymentScope(
        invoice_ids=tuple(invoice_ids_of(facts)),
        customer_id=payment.customer_id if unapplied else "",
        paused_ids=seen.paused_placement_ids,
        gone_cause=gone_cause,
    )


def replay(seen: SeenPayment, ledgers: Sequence[Ledger], *, stale: bool) -> list[Decision]:
    """The same (or an older) version again: nothing changes; say what each placement is."""
    invoice_ids = list(seen.invoice_amounts)
    by_invoice = {ledger.placement.invoice_id: ledger for ledger in ledgers}
    what = "an older version" if stale else f"version {seen.version or seen.state}"
    label = payment_label(seen.provider, seen.payment_id)
    decisions: list[Decision] = []
    for invoice_id in invoice_ids:
        if invoice_id not in by_invoice:
            decisions.append(
                report(
                    None,
                    invoice_id,
                    Outcome.NO_PLACEMENT,
                    f"invoice {invoice_id} of {label} is not placed",
                )
            )
    for ledger in sorted(ledgers, key=lambda ledger: ledger.id):
        if ledger.active_exclusion(seen.payment_id):
            outcome = Outcome.EXCLUDED_AFTER_RESTORE
            detail = (
                f"{label} was excluded from this placement by a restore and has not "
                f"changed in {provider_label(seen.provider)} since; ignored"
            )
        else:
            outcome = Outcome.DUPLICATE_NO_CHANGE
            detail = f"{label}: {what} was already applied; nothing changed"
        decisions.append(report(ledger.placement, "", outcome, detail))
    return decisions


def unread_payment_gone(ledger: Ledger, payment: PaymentIn, ctx: Context) -> Effect:
    """A payment deleted, voided or taken off the invoice before we read it, which an
    invoice version showed and which resolved the placement (counted from the invoice's
    drop): what it paid is unknown and the resolution no longer stands. Outreach stays
    stopped; a human decides. What it paid comes back only while the invoice version we
    hold still links it."""
    p = ledger.placement
    balance = p.balance_minor_units
    # An invoice version read since, which no longer links the payment, already showed it
    # gone: the placement follows that version's balance, nothing comes back.
    linked = payment.payment_id in p.invoice_linked_payment_ids
    if p.restore_balance_minor_units is not None and linked:
        balance = max(balance, p.restore_balance_minor_units)
    back = balance - p.balance_minor_units
    # The view of the invoice's balance in the books loses the payment too: the next
    # invoice version, which no longer shows it, then brings no rise to count again.
    p = evolve(
        p,
        oob_paid_minor_units=max(0, p.oob_paid_minor_units - back),
        unseen_paid_minor_units=max(0, p.unseen_paid_minor_units - back),
        invoice_balance_minor_units=p.invoice_balance_minor_units + back,
        invoice_linked_payment_ids=tuple(
            pid for pid in p.invoice_linked_payment_ids if pid != payment.payment_id
        ),
    )
    reason = (
        f"{payment_label(p.provider, payment.payment_id)}, which invoice "
        f"{p.invoice_id}'s balance showed before the payment was read and "
        f"after which the placement was {p.status}, "
        + (
            f"no longer applied to the invoice when it was read in {provider_label(p.provider)}; "
            if payment.state is EntityState.ACTIVE
            else f"was {payment.state.value} in {provider_label(p.provider)} before it was read; "
        )
        + (
            f"{money(p, balance)} owed again"
            if linked
            else f"the invoice's balance read since no longer shows it, {money(p, balance)} owed"
        )
        + ". Outreach stays stopped until a human reviews it"
    )
    change = Change(
        Verdict.FLAGGED_FOR_REVIEW,
        reason,
        balance=balance,
        review_reason=reason,
        cause=(payment.payment_id, payment.version),
        details={
            "payment_id": payment.payment_id,
            "provider_version": payment.version,
            "payment_state": payment.state.value,
        },
    )
    return settle(evolve(ledger, placement=p), change, ctx, records=(reclassify(p),))


def invoice_ids_of(facts: PaymentFacts) -> list[str]:
    """The invoices a payment version concerns: those it applies to and those it did."""
    return list(dict.fromkeys([*facts.amounts, *(facts.previous or {})]))


def decide_payment(
    payment: PaymentIn,
    seen: SeenPayment,
    first_sight: bool,
    gone: Sequence[Ledger],
    ledgers: Sequence[Ledger],
    ctx: Context,
) -> PaymentDecided:
    """A new version of a payment. ``gone``: the placements an unread payment that is now
    voided or deleted resolved; ``ledgers``: every placement locked for the payment (its
    invoices, its customer's active ones when it carries unapplied money, those it paused),
    in placement-id order."""
    effects: list[Effect] = []
    decisions: list[Decision] = []
    if first_sight:
        # Gone from those invoices before we ever read it; only an invoice version can
        # have counted it there.
        for ledger in gone:
            effect = unread_payment_gone(ledger, payment, ctx)
            effects.append(effect)
            assert effect.decision is not None
            decisions.append(effect.decision)
    if payment.state is EntityState.DELETED and first_sight:
        record = evolve(
            seen,
            version=payment.version,
            version_sequence=payment.version_sequence,
            state=payment.state.value,
            updated_at=ctx.now,
        )
        return PaymentDecided(tuple(decisions), tuple(effects), record)

    facts = payment_facts(payment, seen, first_sight)
    invoice_ids = invoice_ids_of(facts)
    unapplied = payment.state is EntityState.ACTIVE and payment.unapplied > 0
    ours = [
        ledger
        for ledger in ledgers
        if ledger.placement.tenant_id == seen.tenant_id
        and ledger.placement.company_id == seen.company_id
    ]
    by_invoice = {ledger.placement.invoice_id: ledger for ledger in ours}
    current = {ledger.id: ledger for ledger in by_invoice.values()}
    decided: set[str] = set()
    for invoice_id in invoice_ids:
        found = by_invoice.get(invoice_id)
        if found is None:
            decisions.append(
                report(
                    None,
                    invoice_id,
                    Outcome.NO_PLACEMENT,
                    f"{facts.describe()} applies "
                    f"{format_money(facts.amounts.get(invoice_id, 0), facts.currency)} to "
                    f"invoice {invoice_id}, which is not placed",
                )
            )
            continue
        previous = None if facts.previous is None else facts.previous.get(invoice_id)
        effect = payment_line(current[found.id], facts, previous, ctx)
        effects.append(effect)
        assert effect.decision is not None
        assert effect.ledger is not None
        decisions.append(effect.decision)
        current[found.id] = effect.ledger
        decided.add(found.id)

    paused = list(seen.paused_placement_ids)
    if unapplied:
        candidates = [
            current[ledger.id]
            for ledger in ours
            if ledger.id not in decided and ledger.placement.customer_id == payment.customer_id
        ]
        for effect in pause_for_unapplied(candidates, facts, ctx):
            effects.append(effect)
            if effect.ledger is not None:
                current[effect.ledger.id] = effect.ledger
            if effect.decision is None:
                continue
            decisions.append(effect.decision)
            decided.add(effect.decision.placement_id)
            if effect.decision.outcome is Outcome.PAUSED_UNAPPLIED_PAYMENT:
                paused.append(effect.decision.placement_id)
    for ledger in ledgers:
        if ledger.id in seen.paused_placement_ids and ledger.id not in decided:
            p = current.get(ledger.id, ledger).placement
            decisions.append(
                report(
                    p,
                    "",
                    Outcome.DUPLICATE_NO_CHANGE,
                    f"{facts.describe()} changed; the placement it paused stays "
                    f"{p.status} until a human reviews it",
                )
            )

    record = _recorded(seen, payment, facts, paused, ctx)
    for n, decision in enumerate(decisions):
        decided_ledger = current.get(decision.placement_id)
        if decided_ledger is None:
            continue
        payments = [
            record if s.payment_id == record.payment_id else s for s in decided_ledger.unapplied
        ]
        covered = pause_if_unapplied_covers(decided_ledger, payments, ctx)
        if covered is not None:
            assert covered.decision is not None
            assert covered.ledger is not None
            effects.append(covered)
            decisions[n] = covered.decision
            current[decided_ledger.id] = covered.ledger
    return PaymentDecided(tuple(decisions), tuple(effects), record)


def _recorded(
    seen: SeenPayment, payment: PaymentIn, facts: PaymentFacts, paused: list[str], ctx: Context
) -> SeenPayment:
    """The payment's record after this version."""
    record = evolve(
        seen,
        version=payment.version or seen.version,
        version_sequence=payment.version_sequence if payment.version else seen.version_sequence,
        state=payment.state.value,
        currency_code=facts.currency,
    )
    if payment.state is not EntityState.DELETED:
        record = evolve(
            record,
            total_minor_units=payment.total,
            unapplied_minor_units=payment.unapplied,
            customer_id=payment.customer_id or seen.customer_id,
            credit_memo_ids=tuple(facts.credit_memo_ids),
            provider_created_at=payment.create_time or seen.provider_created_at,
        )
    # Invoices linked before keep a 0 entry, so replays and later versions still find them.
    return evolve(
        record,
        invoice_amounts={**dict.fromkeys(facts.previous or {}, 0), **facts.amounts},
        paused_placement_ids=tuple(dict.fromkeys(paused)),
        provider_updated_at=payment.last_updated or seen.provider_updated_at,
        updated_at=ctx.now,
    )
