"""The table's rows for a payment the debtor made through our portal.

=========================================  ==============================================
row                                        verdict
=========================================  ==============================================
the same portal payment again              no change (another placement or amount: refused)
already recorded in QBO by the creditor    counted once: the QBO payment is its mirror
clears the balance                         resolved, paid through the portal
received after the placement stopped       flagged for review (possible double payment)
anything else                              portal partial payment
=========================================  ==============================================
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aicollect.errors import AlreadyExists, InvalidArgument
from services.matcher.decisions.outcomes import (
    KIND_PAYMENT,
    PAID_THROUGH_PORTAL,
    TERMINAL,
    Verdict,
)
from services.matcher.decisions.rules.common import (
    Change,
    mirror_change,
    money,
    settle,
    unchanged,
)
from services.matcher.decisions.values import (
    Application,
    Context,
    Effect,
    Ledger,
    PortalState,
    evolve,
)
from services.matcher.domain import Outcome, PortalPaymentIn, Status, provider_label


def decide_portal_payment(
    ledger: Ledger, existing: PortalState | None, payment: PortalPaymentIn, ctx: Context
) -> Effect:
    p = ledger.placement
    if existing is not None:
        same = (
            existing.placement_id == payment.placement_id
            and existing.amount_minor_units == payment.amount.minor_units
            and existing.currency_code == payment.amount.currency
        )
        if not same:
            raise AlreadyExists(
                f"portal_payment_id {payment.portal_payment_id} was already recorded with "
                "another placement or amount",
                reason="PORTAL_PAYMENT_ID_REUSED",
            )
        return unchanged(
            ledger,
            "",
            Outcome.DUPLICATE_NO_CHANGE,
            f"portal payment {payment.portal_payment_id} was already recorded; nothing changed",
        )
    if payment.amount.currency != p.currency_code:
        raise InvalidArgument(
            f"amount.currency_code must be the placement's currency {p.currency_code}",
            field="amount.currency_code",
        )

    amount = payment.amount.minor_units
    tol = ctx.tolerance
    portal = PortalState(
        portal_payment_id=payment.portal_payment_id,
        placement_id=p.placement_id,
        tenant_id=p.tenant_id,
        currency_code=p.currency_code,
        amount_minor_units=amount,
        fee_minor_units=payment.fee,
        pay_time=payment.pay_time,
        applied_minor_units=0,
        mirrored_by_payment_id=None,
        recorded_at=ctx.now,
    )
    details: dict[str, Any] = {
        "portal_payment_id": payment.portal_payment_id,
        "amount_minor_units": amount,
        "pay_time": payment.pay_time.isoformat(),
    }
    status = Status(p.status)
    mirror = find_qbo_mirror(ledger, amount, payment, ctx)
    unseen = _unseen_mirror(ledger, amount, payment, ctx)
    if mirror is not None or unseen:
        # The creditor recorded this portal payment in QBO before we did: swap, don't add.
        if mirror is not None:
            give_back = mirror.counted_minor_units
            ledger = ledger.with_application(
                evolve(
                    mirror,
                    counted_minor_units=0,
                    mirror_portal_payment_id=portal.portal_payment_id,
                    updated_at=ctx.now,
                )
            )
            portal = evolve(portal, mirrored_by_payment_id=mirror.payment_id)
            recorded_by = mirror.payment_id
        else:
            # Known so far only from the invoice's balance: the payment, when read, is linked.
            give_back = p.unseen_paid_minor_units
            ledger = ledger.with_placement(
                unseen_paid_minor_units=0,
                mirror_pending_minor_units=p.mirror_pending_minor_units + give_back,
            )
            recorded_by = p.resolving_payment_id or p.cause_payment_id
        ledger = ledger.with_placement(
            oob_paid_minor_units=ledger.placement.oob_paid_minor_units - give_back
        )
        p = ledger.placement
        owed = p.balance_minor_units + give_back
        portal = evolve(portal, applied_minor_units=min(amount, owed))
        new_balance = owed - portal.applied_minor_units
        details["payment_id"] = recorded_by
        detail = (
            f"portal payment {payment.portal_payment_id} of {money(p, amount)} was "
            f"already recorded in {provider_label(p.provider)} "
            f"(payment {recorded_by or 'not read yet'}); not counted twice, "
            f"{money(p, new_balance)} left"
        )
        change, records = mirror_change(
            p,
            new_balance,
            detail,
            details,
            ctx,
            pays=Verdict.PORTAL_MIRRORED_PAYS,
            balance_only=Verdict.PORTAL_MIRRORED_BALANCE,
        )
        return settle(ledger.with_portal(portal), change, ctx, records=records)

    applied = min(amount, p.balance_minor_units)
    portal = evolve(portal, applied_minor_units=applied)
    new_balance = p.balance_minor_units - applied
    overpaid = amount - applied
    details["applied_minor_units"] = applied
    details["overpaid_minor_units"] = overpaid
    detail = (
        f"portal payment {payment.portal_payment_id} of {money(p, amount)}; "
        f"{money(p, new_balance)} left" + (f" ({money(p, overpaid)} overpaid)" if overpaid else "")
    )
    if status in TERMINAL:
        reason = (
            f"portal payment {payment.portal_payment_id} of {money(p, amount)} received "
            f"after the placement was {status.value}: possible double payment, a refund may be due"
        )
        change = Change(
            Verdict.FLAGGED_FOR_REVIEW,
            reason,
            balance=new_balance,
            review_reason=reason,
            cause=("", None),
            details=details,
        )
    elif new_balance <= tol:
        change = Change(
            Verdict.PAID_THROUGH_PORTAL,
            detail,
            balance=new_balance,
            resolution_reason=PAID_THROUGH_PORTAL,
            cause=("", None),
            details=details,
        )
    else:
        change = Change(
            Verdict.PORTAL_PARTIAL_PAYMENT, detail, balance=new_balance, details=details
        )
    return settle(ledger.with_portal(portal), change, ctx)


def _unseen_mirror(ledger: Ledger, amount: int, payment: PortalPaymentIn, ctx: Context) -> bool:
    """Whether the invoice's balance already dropped by about this amount through a QBO
    payment not read yet, close enough in time to be the creditor's record of it."""
    p = ledger.placement
    unseen = p.unseen_paid_minor_units
    when = p.invoice_updated_at
    return (
        unseen > 0
        and abs(unseen - amount) <= ctx.tolerance
        and (when is None or abs(when - payment.pay_time) <= ctx.window)
    )


def find_qbo_mirror(
    ledger: Ledger, amount: int, payment: PortalPaymentIn, ctx: Context
) -> Application | None:
    """The QBO payment counted on the placement that records this portal payment, if any:
    same amount within the tolerance, made nearest in the window."""
    best: tuple[timedelta, Application] | None = None
    for app in ledger.applications.values():
        times = ledger.payment_times.get(app.payment_id)
        if (
            times is None
            or app.kind != KIND_PAYMENT
            or app.mirror_portal_payment_id is not None
            or app.counted_minor_units <= 0
        ):
            continue
        when = times.created or times.updated
        if when is None or abs(app.amount_minor_units - amount) > ctx.tolerance:
            continue
        distance = abs(when - payment.pay_time)
        if distance <= ctx.window and (best is None or distance < best[0]):
            best = (distance, app)
    return best[1] if best else None
