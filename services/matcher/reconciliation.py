"""A tenant's reconciliation report for one day, in integer minor units per currency.

* Portal payments (money the debtor paid through us): the contingency fee is the fee the
  portal recorded, else ``amount * contingency_fee_basis_points / 10000`` rounded half up;
  the net is remitted to the creditor.
* Out-of-band resolutions (the debtor paid the creditor directly): the amount is what the
  debtor paid directly on the placement (QBO payments applied to it, the QBO records of
  portal payments excluded); the fee follows the out-of-band treatment of the terms
  (full, reduced or waived) and is 0 for a resolution later reversed by a restore. A
  resolution that no longer stands (its payment turned out to be the QBO record of a
  portal payment or a credit memo, or was voided, deleted or reduced in QBO) is not listed.
* Possible double payments: QBO payments recorded that day that brought more than their
  placement owed (the placement was already paid or closed by something else, or the
  payment exceeded the balance), with the excess and the payment's unapplied remainder.
  A refund may be due; they change no fee.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.matcher.domain import (
    CurrencySection,
    DoublePaymentEntry,
    FeeTerms,
    FeeTreatment,
    OutOfBandEntry,
    PortalEntry,
    Report,
    Status,
)
from services.matcher.models import DoublePayment, OutOfBandResolution, Placement, PortalPayment

BASIS_POINTS = 10_000


def fee(amount: int, basis_points: int) -> int:
    """``amount * basis_points / 10000`` rounded half up, in integers (amounts are >= 0)."""
    return (amount * basis_points + BASIS_POINTS // 2) // BASIS_POINTS


def day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return start, end


def out_of_band_fee(amount: int, terms: FeeTerms, *, restored: bool) -> int:
    if restored or terms.oob_treatment is FeeTreatment.WAIVED:
        return 0
    if terms.oob_treatment is FeeTreatment.REDUCED:
        return fee(amount, terms.oob_reduced_bp)
    return fee(amount, terms.contingency_bp)


async def build_report(
    session: AsyncSession, tenant_id: str, day: date, zone_name: str, terms: FeeTerms
) -> Report:
    zone = ZoneInfo(zone_name)
    start, end = day_bounds(day, zone)
    sections: dict[str, CurrencySection] = {}

    def section(currency: str) -> CurrencySection:
        return sections.setdefault(currency, CurrencySection(currency))

    portal_rows = await session.execute(
        select(PortalPayment, Placement.invoice_id, Placement.doc_number)
        .join(Placement, Placement.placement_id == PortalPayment.placement_id)
        .where(
            PortalPayment.tenant_id == tenant_id,
            PortalPayment.pay_time >= start,
            PortalPayment.pay_time < end,
        )
        .order_by(PortalPayment.pay_time, PortalPayment.portal_payment_id)
    )
    for payment, invoice_id, doc_number in portal_rows.tuples():
        charged = (
            payment.fee_minor_units
            if payment.fee_minor_units is not None
            else fee(payment.amount_minor_units, terms.contingency_bp)
        )
        section(payment.currency_code).portal.append(
            PortalEntry(
                portal_payment_id=payment.portal_payment_id,
                placement_id=payment.placement_id,
                invoice_id=invoice_id,
                doc_number=doc_number,
                pay_time=payment.pay_time,
                amount=payment.amount_minor_units,
                fee=charged,
            )
        )

    resolution_rows = await session.execute(
        select(OutOfBandResolution, Placement.invoice_id, Placement.doc_number)
        .join(Placement, Placement.placement_id == OutOfBandResolution.placement_id)
        .where(
            OutOfBandResolution.tenant_id == tenant_id,
            OutOfBandResolution.resolved_at >= start,
            OutOfBandResolution.resolved_at < end,
            OutOfBandResolution.reclassified_at.is_(None),
        )
        .order_by(OutOfBandResolution.resolved_at, OutOfBandResolution.id)
    )
    for resolution, invoice_id, doc_number in resolution_rows.tuples():
        restored = resolution.restored_at is not None
        section(resolution.currency_code).out_of_band.append(
            OutOfBandEntry(
                placement_id=resolution.placement_id,
                invoice_id=invoice_id,
                doc_number=doc_number,
                payment_id=resolution.payment_id,
                resolve_time=resolution.resolved_at,
                amount=resolution.amount_minor_units,
                treatment=terms.oob_treatment,
                fee=out_of_band_fee(resolution.amount_minor_units, terms, restored=restored),
                restored=restored,
            )
        )

    double_rows = await session.execute(
        select(DoublePayment, Placement.invoice_id, Placement.doc_number)
        .join(Placement, Placement.placement_id == DoublePayment.placement_id)
        .where(
            DoublePayment.tenant_id == tenant_id,
            DoublePayment.detected_at >= start,
            DoublePayment.detected_at < end,
        )
        .order_by(DoublePayment.detected_at, DoublePayment.id)
    )
    for double, invoice_id, doc_number in double_rows.tuples():
        section(double.currency_code).double_payments.append(
            DoublePaymentEntry(
                placement_id=double.placement_id,
                invoice_id=invoice_id,
                doc_number=doc_number,
                payment_id=double.payment_id,
                detect_time=double.detected_at,
                amount=double.amount_minor_units,
                excess=double.excess_minor_units,
                unapplied=double.unapplied_minor_units,
                previous_status=Status(double.previous_status),
            )
        )
    return Report(
        tenant_id=tenant_id,
        day=day,
        time_zone=zone_name,
        start=start,
        end=end,
        sections=[sections[c] for c in sorted(sections)],
    )
