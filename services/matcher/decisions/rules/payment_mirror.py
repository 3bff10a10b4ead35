"""The row for a payment's line that is the creditor's own record of a portal payment.

A debtor who paid through our portal is paid once: when the creditor records that money in
the provider's books, the payment there (same amount within the tolerance, made within the
match window, the nearest one; :func:`find_portal_mirror`) mirrors the portal payment and
counts nothing again. If that pays the placement, it was paid through the portal, never out
of band; otherwise only the balance follows (:func:`payment_mirrors_portal`).
"""

from __future__ import annotations

from datetime import datetime

from services.matcher.decisions.outcomes import Verdict
from services.matcher.decisions.rules.common import mirror_change, money, settle, unchanged
from services.matcher.decisions.rules.payment_facts import CountedLine
from services.matcher.decisions.values import (
    Context,
    Effect,
    Ledger,
    PortalState,
    Record,
    evolve,
)
from services.matcher.domain import Outcome


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


def payment_mirrors_portal(
    line: CountedLine,
    newly_mirrored: PortalState | None,
    records: list[Record],
    ctx: Context,
) -> Effect:
    """The line mirrors a portal payment (``newly_mirrored``: the one it was matched with
    now, None when it was matched before): not counted again."""
    ledger = line.ledger
    p = ledger.placement
    invoice_id = p.invoice_id
    facts = line.facts
    portal_id = ledger.applications[facts.id].mirror_portal_payment_id
    if newly_mirrored is None and line.delta == 0 and line.amount == line.prior_amount:
        return unchanged(
            ledger, invoice_id, Outcome.DUPLICATE_NO_CHANGE, "nothing changed", records
        )
    new_balance = line.new_balance
    left = line.left
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
        f"{facts.describe()} of {money(p, line.amount)} to invoice {invoice_id} is "
        f"the creditor's record of portal payment {portal_id}; not counted again, "
        f"{left} left",
        {**line.details, "portal_payment_id": portal_id},
        ctx,
        pays=Verdict.MIRROR_PAYS,
        balance_only=Verdict.MIRROR_BALANCE,
    )
    return settle(ledger, change, ctx, invoice_id, [*records, *more])
