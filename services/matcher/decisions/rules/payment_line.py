"""The table's rows for one QBO payment's amount on one placed invoice.

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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.matcher.decisions.outcomes import (
    ACTION_DOUBLE_PAYMENT_REMOVED,
    ACTION_EXCLUSION_LIFTED,
    KIND_CREDIT_MEMO,
    KIND_PAYMENT,
    PAID_OUT_OF_BAND,
    REVIEW,
    TERMINAL,
    Verdict,
)
from services.matcher.decisions.rules.common import (
    Change,
    audit_entry,
    double_payment_change,
    exclusion_holds,
    flag_double_payment,
    mirror_change,
    money,
    money_payment,
    payment_label,
    reclassify,
    resolution_recorded,
    settle,
    unchanged,
    version_name,
)
from services.matcher.decisions.values import (
    Application,
    Context,
    Effect,
    Ledger,
    PlacementState,
    PortalState,
    Record,
    ResolutionsChanged,
    SeenPayment,
    evolve,
)
from services.matcher.domain import (
    EntityState,
    LinkType,
    Outcome,
    PaymentIn,
    Status,
    format_money,
    provider_label,
)


@dataclass(frozen=True)
class PaymentFacts:
    """The payment as the rules see it (a deleted payment keeps what was recorded)."""

    payment: PaymentIn
    provider: str  # whose books the payment is in: "qbo" or "xero", as the texts name them
    currency: str
    amounts: Mapping[str, int]  # qbo invoice id -> amount applied by this version
    previous: Mapping[str, int] | None  # the same for the version applied before, if any
    credit_memo_ids: tuple[str, ...]
    time: datetime | None  # when the payment was made in QBO, for the mirror window
    money: int = 0  # the money applied (total less unapplied) of this or the last version

    @property
    def id(self) -> str:
        return self.payment.payment_id

    @property
    def token(self) -> str:
        return self.payment.version

    @property
    def state(self) -> EntityState:
        return self.payment.state

    @property
    def funded_by_credit(self) -> bool:
        """The invoice lines are paid with credit memos, not money."""
        return bool(self.credit_memo_ids) and self.money <= 0

    @property
    def books(self) -> str:
        """The provider's name ("QBO", "Xero"), for "in QBO" in the texts."""
        return provider_label(self.provider)

    def label(self) -> str:
        """The payment by name: "QBO payment 123", "Xero payment 1f3e..."."""
        return payment_label(self.provider, self.id)

    def describe(self) -> str:
        if self.state is not EntityState.ACTIVE:
            return f"{self.label()} ({self.state.value})"
        return self.label()


def payment_facts(payment: PaymentIn, record: SeenPayment, first_sight: bool) -> PaymentFacts:
    amounts: dict[str, int] = {}
    credit_memos: list[str] = []
    if payment.state is EntityState.ACTIVE:
        for line in payment.lines:
            if line.linked_type is LinkType.INVOICE:
                amounts[line.linked_txn_id] = amounts.get(line.linked_txn_id, 0) + line.amount
            elif line.linked_type is LinkType.CREDIT_MEMO:
                credit_memos.append(line.linked_txn_id)
    deleted = payment.state is EntityState.DELETED
    active = payment.state is EntityState.ACTIVE
    return PaymentFacts(
        payment=payment,
        provider=record.provider,
        currency=record.currency_code if deleted else payment.currency,
        amounts=amounts,
        previous=None if first_sight else dict(record.invoice_amounts),
        # A voided or deleted payment keeps what it was: a credit memo application stays one.
        credit_memo_ids=tuple(dict.fromkeys(credit_memos))
        if active
        else tuple(record.credit_memo_ids),
        time=payment.create_time or record.provider_created_at or payment.last_updated,
        money=payment.total - payment.unapplied
        if active
        else record.total_minor_units - record.unapplied_minor_units,
    )


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


def find_portal_mirror(
    ledger: Ledger, amount: int, when: datetime | None, ctx: Context
) -> PortalState | None:
    """The portal payment (not mirrored yet) a QBO payment of ``amount`` made at ``when``
    records, if any: same amount within the tolerance, the nearest in the window."""
    if when is None:
        return None
    matching = [
        q
        for q in ledger.portal_payments
        if q.mirrored_by_payment_id is None
        and abs(q.amount_minor_units - amount) <= ctx.tolerance
        and abs(q.pay_time - when) <= ctx.window
    ]
    return min(matching, key=lambda q: abs(q.pay_time - when), default=None)


def applier(facts: PaymentFacts, kind: str) -> str:
    """Who applies the amount: a payment's money, or credit memos (through a QBO payment)."""
    if kind == KIND_CREDIT_MEMO and facts.credit_memo_ids:
        memos = ", ".join(facts.credit_memo_ids)
        return f"credit memo {memos} (through {facts.label()})"
    return facts.describe()


def credit_memo_reason(facts: PaymentFacts, invoice_id: str, *, partial: bool = False) -> str:
    memos = ", ".join(facts.credit_memo_ids)
    what = "reduced" if partial else "reduced to zero"
    return (
        f"invoice {invoice_id}'s balance {what} in {facts.books} by credit memo {memos} "
        f"(applied by {facts.label()}), not by a payment"
    )


def invoice_shows_edit(p: PlacementState, facts: PaymentFacts, amount: int, counted: int) -> bool:
    """Whether the invoice version we hold (linking the payment) already shows this version
    of a payment applied before: it was made after the payment's version (QBO's
    ``LastUpdatedTime``), or in the same second (a payment's edit and the invoice version it
    makes share it) when counting the edit would raise the balance: never dun for more than
    that version says (had it predated the edit, the version the edit made will say so).
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
    return when < invoice_when or (when == invoice_when and amount < counted)


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

    def track_qbo(p: PlacementState, app: Application) -> tuple[PlacementState, Application]:
        p = evolve(
            p,
            invoice_balance_minor_units=max(
                0, p.invoice_balance_minor_units - (amount - app.reflected_minor_units)
            ),
        )
        app = evolve(
            app, reflected_minor_units=amount, amount_minor_units=amount, updated_at=ctx.now
        )
        return p, app

    def now(p: PlacementState, app: Application) -> Ledger:
        # The ledger as it stands (rebound below), with the placement and this application.
        return evolve(ledger, placement=p).with_application(app)

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
        if exclusion_holds(exclusion, facts.token, facts.payment.last_updated):
            p, app = track_qbo(p, app)
            if exclusion.version is None:
                exclusion = evolve(exclusion, version=facts.token)
            app = evolve(app, counted_minor_units=0)
            return unchanged(
                now(p, app).with_exclusion(exclusion),
                invoice_id,
                Outcome.EXCLUDED_AFTER_RESTORE,
                f"{facts.describe()} was excluded from this placement by a restore and has not "
                f"changed in {facts.books} since; ignored",
            )
        ledger = ledger.with_exclusion(evolve(exclusion, lifted_at=ctx.now))
        records.append(
            audit_entry(
                p,
                ACTION_EXCLUSION_LIFTED,
                f"{facts.describe()} changed in {facts.books} after the restore "
                f"({version_name(facts.provider)} {exclusion.version} -> {facts.token}); "
                "it is matched again",
                facts_details,
            )
        )

    # Currency mismatch: amounts cannot be compared; a human decides.
    if amount > 0 and facts.currency != p.currency_code:
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
                details=facts_details,
            )
            return settle(now(p, app), change, ctx, invoice_id, records)
        return unchanged(
            now(p, app),
            invoice_id,
            Outcome.PAUSED_CURRENCY_MISMATCH
            if Status(p.status) in REVIEW
            else Outcome.DUPLICATE_NO_CHANGE,
            f"{reason} (placement already {p.status})",
            records,
        )

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
        and invoice_shows_edit(p, facts, amount, app.counted_minor_units)
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
    p, app = track_qbo(p, app)
    ledger = now(p, app)
    new_balance = p.balance_minor_units - delta
    status = Status(p.status)
    left = money(p, max(0, new_balance))
    removed = facts.state is not EntityState.ACTIVE
    edit = not fresh or reflected_already or previous is not None
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
    p = ledger.placement
    if removed and prior_amount > 0 and p.review_flag and facts.id in ledger.double_payment_ids:
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
        portal_id = app.mirror_portal_payment_id
        if newly_mirrored is None and delta == 0 and amount == prior_amount:
            return unchanged(
                ledger, invoice_id, Outcome.DUPLICATE_NO_CHANGE, "nothing changed", records
            )
        if newly_mirrored is not None:
            # The portal payment may not have counted in full (it looked like an overpayment
            # while this payment was counted): now that they are one, it does.
            extra = min(
                newly_mirrored.amount_minor_units - newly_mirrored.applied_minor_units,
                max(0, new_balance),
            )
            newly_mirrored = evolve(
                newly_mirrored, applied_minor_units=newly_mirrored.applied_minor_units + extra
            )
            ledger = ledger.with_portal(newly_mirrored)
            new_balance -= extra
            left = money(p, max(0, new_balance))
        change, more = mirror_change(
            p,
            new_balance,
            f"{facts.describe()} of {money(p, amount)} to invoice {invoice_id} is "
            f"the creditor's record of portal payment {portal_id}; not counted again, "
            f"{left} left",
            {**details, "portal_payment_id": portal_id},
            ctx,
            pays=Verdict.MIRROR_PAYS,
            balance_only=Verdict.MIRROR_BALANCE,
        )
        return settle(ledger, change, ctx, invoice_id, [*records, *more])

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
        return _nothing_counted(
            ledger, facts, kind, details, (reflected_already, shown), previous, fresh, ctx, records
        )

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

    if edit and (prior_amount != amount or removed):
        verdict = Verdict.EDIT_APPLIED
    elif kind == KIND_CREDIT_MEMO:
        verdict = Verdict.BALANCE_UPDATED
        detail = f"{detail}; {credit_memo_reason(facts, invoice_id, partial=True)}"
    else:
        verdict = Verdict.PARTIAL_PAYMENT
    change = Change(verdict, detail, balance=new_balance, details=details)
    return settle(ledger, change, ctx, invoice_id, records)


def _nothing_counted(
    ledger: Ledger,
    facts: PaymentFacts,
    kind: str,
    details: dict[str, Any],
    reflected: tuple[bool, bool],
    previous: int | None,
    fresh: bool,
    ctx: Context,
    records: list[Record],
) -> Effect:
    """The payment's version counts nothing new: no change, unless the invoice told us of
    it first and it turns out to be a credit memo (the resolution is corrected, or the
    placement closed when no money was paid out of band). ``reflected``: a line first read
    that the invoice balance already reflects; an edit the invoice version already shows."""
    reflected_already, shown = reflected
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
    elif reflected_already or (previous is not None and fresh):
        detail = (
            f"{facts.describe()} was already reflected in invoice {invoice_id}'s balance; "
            "nothing changed"
        )
    else:
        detail = f"{facts.describe()} changes nothing for invoice {invoice_id}"
    # An edit already shown is recorded (what the payment counts changed, not the balance).
    change = Change(Verdict.PAYMENT_NO_CHANGE, detail, details=details, audit=shown)
    return settle(ledger, change, ctx, invoice_id, records)
