"""The table's rows for a new version of a placed invoice.

The matcher keeps its own view of QBO's balance (``invoice_balance_minor_units``: what every
invoice version and payment read implies). A new version is compared with it: what
payments already explain changes nothing; the rest (credit memos, write-offs, edits,
payments not read yet) follows QBO, which is the truth of what is owed.

=========================================  ==============================================
row                                        verdict
=========================================  ==============================================
invoice voided or deleted                  paused pending review
currency differs                           paused pending review
drop through a payment not read yet,       presumed the portal payment's record
  about a portal payment's amount
more than owed on a stopped placement      possible double payment (flag)
balance explained by payments applied      no change
balance cleared, money paid out of band    resolved out of band
balance cleared, no money paid             closed (the reason names the credit/adjustment)
balance rose on a stopped placement        flagged for review (outreach stays stopped)
anything else                              partial payment / balance updated
=========================================  ==============================================
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.matcher.decisions.outcomes import (
    KIND_PAYMENT,
    PAID_OUT_OF_BAND,
    TERMINAL,
    Verdict,
)
from services.matcher.decisions.rules.common import (
    Change,
    double_payment_change,
    flag_double_payment,
    money,
    money_payment,
    payment_label,
    reclassify,
    resolution_recorded,
    settle,
    unchanged,
    version_order,
)
from services.matcher.decisions.rules.unapplied import pause_if_unapplied_covers
from services.matcher.decisions.values import (
    Application,
    Context,
    Effect,
    Ledger,
    Record,
    evolve,
)
from services.matcher.domain import (
    EntityState,
    InvoiceIn,
    LinkedTxnIn,
    LinkType,
    Outcome,
    Status,
    provider_label,
)


def decide_invoice(ledger: Ledger, invoice: InvoiceIn, ctx: Context) -> list[Effect]:
    """A version of the placement's invoice: nothing for one already applied (or older);
    otherwise the version's row, then the unapplied-money check, then the version is kept.
    The last effect's decision is the answer."""
    p = ledger.placement
    order = version_order(
        (p.invoice_version, p.invoice_version_sequence),
        p.invoice_state,
        (invoice.version, invoice.version_sequence),
        invoice.state,
    )
    if order <= 0:
        what = "an older version" if order < 0 else f"version {invoice.version or 'deleted'}"
        return [
            unchanged(
                ledger,
                invoice.invoice_id,
                Outcome.DUPLICATE_NO_CHANGE,
                f"invoice {invoice.invoice_id}: {what} was already applied; nothing changed",
            )
        ]
    effects = [invoice_version(ledger, invoice, ctx)]
    after = effects[-1].ledger
    assert after is not None
    covered = pause_if_unapplied_covers(after, after.unapplied, ctx)
    if covered is not None:
        effects.append(covered)
        assert covered.ledger is not None
        after = covered.ledger
    p = after.placement
    kept = after.with_placement(
        invoice_version=invoice.version or p.invoice_version,
        invoice_version_sequence=(
            invoice.version_sequence if invoice.version else p.invoice_version_sequence
        ),
        invoice_state=invoice.state.value,
        invoice_updated_at=invoice.last_updated or p.invoice_updated_at,
    )
    effects[-1] = evolve(effects[-1], ledger=kept)
    return effects


def invoice_version(ledger: Ledger, invoice: InvoiceIn, ctx: Context) -> Effect:
    tol = ctx.tolerance
    p = ledger.placement
    status = Status(p.status)
    invoice_id = invoice.invoice_id
    books = provider_label(p.provider)
    base_details: dict[str, Any] = {
        "provider_version": invoice.version,
        "invoice_state": invoice.state.value,
        "invoice_balance_minor_units": invoice.balance,
        "invoice_total_minor_units": invoice.total,
        "linked_txns": [f"{t.txn_type.value}:{t.txn_id}" for t in invoice.linked],
    }

    if invoice.state is not EntityState.ACTIVE:
        if invoice.state is EntityState.VOIDED:
            ledger = ledger.with_placement(
                invoice_balance_minor_units=0, invoice_total_minor_units=0
            )
        reason = (
            f"invoice {invoice_id} was {invoice.state.value} in {books}; review before outreach "
            "resumes"
        )
        if status in TERMINAL:
            return unchanged(
                ledger,
                invoice_id,
                Outcome.DUPLICATE_NO_CHANGE,
                f"invoice {invoice_id} was {invoice.state.value} in {books}; the placement is "
                f"already {status.value}",
            )
        verdict = (
            Verdict.PAUSED_INVOICE_VOIDED
            if invoice.state is EntityState.VOIDED
            else Verdict.PAUSED_INVOICE_DELETED
        )
        change = Change(
            verdict, reason, review_reason=reason, cause=("", None), details=base_details
        )
        return settle(ledger, change, ctx, invoice_id)

    if invoice.currency != p.currency_code:
        reason = (
            f"invoice {invoice_id} is now in {invoice.currency} in {books}, the placement is in "
            f"{p.currency_code}; review before outreach resumes"
        )
        if status is not Status.ACTIVE:
            return unchanged(ledger, invoice_id, Outcome.PAUSED_CURRENCY_MISMATCH, reason)
        change = Change(
            Verdict.PAUSED_CURRENCY_MISMATCH,
            reason,
            review_reason=reason,
            cause=("", None),
            details=base_details,
        )
        return settle(ledger, change, ctx, invoice_id)

    apps = list(ledger.applications.values())
    linked_payments = [t.txn_id for t in invoice.linked if t.txn_type is LinkType.PAYMENT]
    others = [t for t in invoice.linked if t.txn_type is not LinkType.PAYMENT]

    def order(app: Application) -> int:
        """-1, 0 or 1: the payment version we hold is older than this invoice version, of
        the same second (or either time unknown), or newer."""
        times = ledger.payment_times.get(app.payment_id)
        when = times.updated if times is not None else None
        if when is None or invoice.last_updated is None or when == invoice.last_updated:
            return 0
        return 1 if when > invoice.last_updated else -1

    # Payments we applied that this invoice version predates are not in its balance yet.
    def newer(app: Application) -> bool:
        return order(app) > 0

    # Payments whose version we hold is older than this invoice version: had they still
    # applied to the invoice, this version would link them.
    def older(app: Application) -> bool:
        return order(app) < 0

    not_linked = [
        a for a in apps if a.payment_id not in linked_payments and a.reflected_minor_units > 0
    ]
    pending = [a for a in not_linked if newer(a)]
    unlinked = [a for a in not_linked if not newer(a)]
    implied = max(0, invoice.balance - sum(a.reflected_minor_units for a in pending))
    drift = implied - p.invoice_balance_minor_units  # < 0: QBO says less is owed

    known = {a.payment_id for a in apps}
    unseen = [pid for pid in linked_payments if pid not in known]
    balance_delta = 0
    removed: list[str] = []
    oob = p.oob_paid_minor_units
    # QBO no longer links payments we applied (voided, deleted, moved): they no longer count.
    # Certainly so when the payment version we hold is older than this invoice version. In
    # the same second (QBO's times have one-second resolution) the version may predate the
    # payment instead: then only a rise says the payment went, or links to payments not read
    # yet, whose drop can hide the rise.
    gone = unlinked if (drift > 0 or unseen) else [a for a in unlinked if older(a)]
    if gone:
        for app in gone:
            drift -= app.reflected_minor_units
            balance_delta += app.counted_minor_units
            if app.kind == KIND_PAYMENT and app.mirror_portal_payment_id is None:
                oob -= app.counted_minor_units
            ledger = ledger.with_application(
                evolve(
                    app,
                    amount_minor_units=0,
                    counted_minor_units=0,
                    reflected_minor_units=0,
                    updated_at=ctx.now,
                )
            )
            removed.append(app.payment_id)
    mirror_pending = 0
    paid_by = ""
    unseen_excess = 0
    pending_mirrors = p.mirror_pending_minor_units
    unseen_paid = p.unseen_paid_minor_units
    if drift < 0:
        drop = -drift
        if unseen:
            # A payment QBO links but we have not read yet: QBO's balance already shows it.
            paid_by = unseen[-1]
            unmirrored = _unmirrored_portal_total(ledger, invoice, ctx)
            if unmirrored > 0 and abs(unmirrored - drop) <= tol:
                mirror_pending = drop
                pending_mirrors += drop
            else:
                counted = min(drop, max(0, p.balance_minor_units + balance_delta))
                balance_delta -= drop
                oob += counted
                unseen_paid += counted
                unseen_excess = drop - counted
        else:
            balance_delta -= drop
    elif drift > 0:
        balance_delta += drift

    ledger = ledger.with_placement(
        oob_paid_minor_units=oob,
        mirror_pending_minor_units=pending_mirrors,
        unseen_paid_minor_units=unseen_paid,
        invoice_balance_minor_units=implied,
        invoice_total_minor_units=invoice.total,
        invoice_linked_payment_ids=tuple(linked_payments),
    )
    p = ledger.placement
    new_balance = max(0, p.balance_minor_units + balance_delta)
    details: dict[str, Any] = {
        **base_details,
        "balance_change_minor_units": new_balance - p.balance_minor_units,
    }
    if removed:
        details["unlinked_payment_ids"] = removed
    if paid_by:
        details["payment_id"] = paid_by
        # Every payment the drop is made of (several when QBO linked more than one before
        # we read them), so each appears in the audit trail.
        details["payment_ids"] = unseen
    left = money(p, new_balance)
    records: list[Record] = []

    if unseen_excess > 0 and (status is not Status.ACTIVE or unseen_excess > tol):
        # QBO shows payments not read yet that bring more than the placement owed.
        details["excess_minor_units"] = unseen_excess
        flag = flag_double_payment(
            ledger,
            ctx,
            payment_id=", ".join(unseen),
            amount=-drift,
            excess=unseen_excess,
            unapplied=0,
            previous=status,
            owed=p.balance_minor_units,
        )
        if flag is not None:
            ledger = flag.ledger
            records.extend(flag.records)
            if status is not Status.ACTIVE:
                moved = new_balance != p.balance_minor_units
                change = double_payment_change(flag.reason, new_balance, details, moved)
                return settle(ledger, change, ctx, invoice_id, records)
    p = ledger.placement
    if mirror_pending:
        change = Change(
            Verdict.MIRROR_BALANCE,
            f"invoice {invoice_id}'s balance in {books} dropped by "
            f"{money(p, mirror_pending)} through {payment_label(p.provider, paid_by)}, "
            "presumed the creditor's record of a portal payment; not counted again, "
            f"{left} left",
            details=details,
        )
        return settle(ledger, change, ctx, invoice_id, records)
    if new_balance == p.balance_minor_units:
        change = Change(
            Verdict.INVOICE_NO_CHANGE,
            f"invoice {invoice_id} version {invoice.version} changes nothing for the "
            "placement (its balance is explained by payments already applied)",
            details=details,
            audit=False,
        )
        return settle(ledger, change, ctx, invoice_id, records)
    if balance_delta < 0 and new_balance <= tol and status not in TERMINAL:
        if paid_by or p.oob_paid_minor_units > tol:
            # Money paid out of band (now, or before a credit cleared the rest).
            payer = paid_by or money_payment(ledger)
            how = payment_label(p.provider, paid_by) if paid_by else reducer(others)
            change = Change(
                Verdict.PAID_OUT_OF_BAND,
                f"invoice {invoice_id}'s balance in {books} is {left} after {how}",
                balance=new_balance,
                resolution_reason=PAID_OUT_OF_BAND,
                resolving_payment_id=payer,
                cause=(paid_by, None) if paid_by else ("", None),
                details=details,
            )
            effect = settle(ledger, change, ctx, invoice_id, records)
            assert effect.ledger is not None
            recorded = resolution_recorded(effect.ledger.placement, payer)
            return evolve(effect, records=(*effect.records, recorded))
        reason = f"invoice {invoice_id}'s balance reduced to zero in {books} by {reducer(others)}"
        change = Change(
            Verdict.CLOSED_BALANCE_ZERO,
            reason,
            balance=new_balance,
            resolution_reason=reason,
            cause=("", None),
            details=details,
        )
        return settle(ledger, change, ctx, invoice_id, records)
    if balance_delta > 0 and status in TERMINAL and new_balance > tol:
        if p.cause_payment_id and p.cause_payment_id in removed:
            if status is Status.RESOLVED_OUT_OF_BAND:
                records.append(reclassify(p))
            cause = p.cause_payment_id
            why = (
                # Only a credit memo application closes a placement with a cause.
                f"the credit memo applied by {payment_label(p.provider, cause)} that closed it"
                if status is Status.CLOSED
                else f"{payment_label(p.provider, cause)} that resolved it"
            ) + f" no longer applies to invoice {invoice_id} in {books} (voided, deleted or moved)"
        else:
            why = (
                f"invoice {invoice_id}'s balance in {books} rose after the placement was "
                f"{status.value}"
            )
        reason = f"{why}; {left} owed again. Outreach stays stopped until a human reviews it"
        change = Change(
            Verdict.FLAGGED_FOR_REVIEW,
            reason,
            balance=new_balance,
            review_reason=reason,
            cause=("", None),
            details=details,
        )
        return settle(ledger, change, ctx, invoice_id, records)
    if paid_by and balance_delta < 0:
        verdict = Verdict.PARTIAL_PAYMENT
        detail = (
            f"invoice {invoice_id}'s balance in {books} dropped after "
            f"{payment_label(p.provider, paid_by)}; "
            f"{left} left"
        )
    else:
        verdict = Verdict.BALANCE_UPDATED
        cause = reducer(others) if balance_delta < 0 else "an edit or a payment no longer applied"
        detail = f"invoice {invoice_id}'s balance changed in {books} ({cause}); {left} owed"
    change = Change(verdict, detail, balance=new_balance, details=details)
    return settle(ledger, change, ctx, invoice_id, records)


def reducer(links: Iterable[LinkedTxnIn]) -> str:
    """What reduced an invoice's balance, in words, from the transactions it links."""
    names = {
        LinkType.CREDIT_MEMO: "credit memo",
        LinkType.JOURNAL_ENTRY: "journal entry",
        LinkType.OTHER: "transaction",
    }
    parts = [
        f"{names.get(t.txn_type, 'transaction')} {t.txn_id}"
        # A journal entry may be a write-off; nothing in QBO says so.
        + (" (a write-off or another adjustment)" if t.txn_type is LinkType.JOURNAL_ENTRY else "")
        for t in links
    ]
    if not parts:
        return "a change without a linked payment (credit memo, write-off or adjustment)"
    return ", ".join(parts) + ", not a payment"


def _unmirrored_portal_total(ledger: Ledger, invoice: InvoiceIn, ctx: Context) -> int:
    when = invoice.last_updated
    return (
        sum(
            q.amount_minor_units
            for q in ledger.portal_payments
            if q.mirrored_by_payment_id is None
            and (when is None or abs(q.pay_time - when) <= ctx.window)
        )
        - ledger.placement.mirror_pending_minor_units
    )
