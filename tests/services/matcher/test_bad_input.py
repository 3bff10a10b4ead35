"""Malformed accounting changes are refused with INVALID_ARGUMENT naming the field, and
change nothing: no balance moves, no audit entry, no outreach event."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
import pytest

from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.type.v1.money_pb2 import Money
from tests.services.matcher.conftest import (
    REALM,
    TENANT,
    Matcher,
    invalid_field,
    placement_input,
    qbo_invoice,
    qbo_payment,
    ts,
    usd,
)


def _payment_request(
    mutate: Callable[[pb.ApplyAccountingPaymentRequest], None],
) -> pb.ApplyAccountingPaymentRequest:
    request = pb.ApplyAccountingPaymentRequest(
        tenant_id=TENANT,
        provider=pb.PROVIDER_QBO,
        company_id=REALM,
        payment=qbo_payment("163", [("70", 10_000)]),
        source=pb.CHANGE_SOURCE_WEBHOOK,
    )
    mutate(request)
    return request


def _line(request: pb.ApplyAccountingPaymentRequest) -> pb.PaymentLine:
    return request.payment.lines[0]


PAYMENT_CASES: list[tuple[Callable[[pb.ApplyAccountingPaymentRequest], None], str]] = [
    (lambda r: setattr(r, "tenant_id", ""), "tenant_id"),
    (lambda r: setattr(r, "company_id", " "), "company_id"),
    (lambda r: setattr(r, "provider", pb.PROVIDER_UNSPECIFIED), "provider"),
    (lambda r: setattr(r, "provider", 7), "provider"),
    (lambda r: r.ClearField("payment"), "payment"),
    (lambda r: setattr(r, "source", pb.CHANGE_SOURCE_UNSPECIFIED), "source"),
    (lambda r: setattr(r.payment, "payment_id", ""), "payment.payment_id"),
    (lambda r: setattr(r.payment, "version", ""), "payment.version"),
    (lambda r: setattr(r.payment, "version_sequence", -1), "payment.version_sequence"),
    (lambda r: setattr(r.payment, "state", pb.ENTITY_STATE_UNSPECIFIED), "payment.state"),
    (lambda r: r.payment.ClearField("total_amount"), "payment.total_amount"),
    (
        lambda r: setattr(r.payment.total_amount, "minor_units", -1),
        "payment.total_amount.minor_units",
    ),
    (
        lambda r: setattr(r.payment.total_amount, "currency_code", ""),
        "payment.total_amount.currency_code",
    ),
    (
        lambda r: setattr(r.payment.unapplied_amount, "minor_units", -5),
        "payment.unapplied_amount.minor_units",
    ),
    (lambda r: setattr(_line(r), "linked_txn_id", ""), "payment.lines[0].linked_txn_id"),
    (
        lambda r: setattr(_line(r), "linked_txn_type", pb.LINKED_TXN_TYPE_UNSPECIFIED),
        "payment.lines[0].linked_txn_type",
    ),
    (
        lambda r: setattr(_line(r).amount, "minor_units", -10_000),
        "payment.lines[0].amount.minor_units",
    ),
    (
        lambda r: setattr(_line(r).amount, "currency_code", "EUR"),
        "payment.lines[0].amount.currency_code",
    ),
    (lambda r: setattr(r.payment, "txn_date", "16/01/2015"), "payment.txn_date"),
]


async def test_bad_payment_changes_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    audits = await matcher.audit_count()
    for mutate, field in PAYMENT_CASES:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.stub.ApplyAccountingPayment(_payment_request(mutate))
        assert invalid_field(info) == field
        assert field in (info.value.details() or "")
    assert await matcher.get(placement.placement_id) == placement
    assert await matcher.audit_count() == audits
    assert await matcher.outbox() == []
    # The same payment, well formed, is then applied normally (nothing was half-recorded).
    assert (await matcher.pay(qbo_payment("163", [("70", 10_000)])))[0].outcome == (
        pb.DECISION_OUTCOME_RESOLVED_OUT_OF_BAND
    )


INVOICE_CASES: list[tuple[pb.ApplyAccountingInvoiceRequest, str]] = [
    (
        pb.ApplyAccountingInvoiceRequest(
            tenant_id=TENANT,
            provider=pb.PROVIDER_QBO,
            company_id=REALM,
            source=pb.CHANGE_SOURCE_CDC,
        ),
        "invoice",
    ),
    (
        pb.ApplyAccountingInvoiceRequest(
            tenant_id=TENANT,
            provider=pb.PROVIDER_QBO,
            company_id=REALM,
            invoice=qbo_invoice("70", 0),
        ),
        "source",
    ),
    (
        pb.ApplyAccountingInvoiceRequest(
            tenant_id=TENANT,
            provider=pb.PROVIDER_QBO,
            company_id=REALM,
            invoice=qbo_invoice("70", 0, state=pb.ENTITY_STATE_UNSPECIFIED),
            source=pb.CHANGE_SOURCE_CDC,
        ),
        "invoice.state",
    ),
    (
        pb.ApplyAccountingInvoiceRequest(
            tenant_id=TENANT,
            provider=pb.PROVIDER_QBO,
            company_id=REALM,
            invoice=pb.AccountingInvoice(
                invoice_id="70",
                version="2",
                state=pb.ENTITY_STATE_ACTIVE,
                total_amount=usd(10_000),
                balance=Money(currency_code="USD", minor_units=-1),
            ),
            source=pb.CHANGE_SOURCE_CDC,
        ),
        "invoice.balance.minor_units",
    ),
    (
        pb.ApplyAccountingInvoiceRequest(
            tenant_id=TENANT,
            provider=pb.PROVIDER_QBO,
            company_id=REALM,
            invoice=qbo_invoice("", 0),
            source=pb.CHANGE_SOURCE_CDC,
        ),
        "invoice.invoice_id",
    ),
    (
        pb.ApplyAccountingInvoiceRequest(
            tenant_id=TENANT,
            provider=pb.PROVIDER_QBO,
            company_id=REALM,
            invoice=qbo_invoice("70", 0, linked=[("9", pb.LINKED_TXN_TYPE_UNSPECIFIED)]),
            source=pb.CHANGE_SOURCE_CDC,
        ),
        "invoice.linked_txns[0].txn_type",
    ),
]


async def test_bad_invoice_changes_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    for request, field in INVOICE_CASES:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.stub.ApplyAccountingInvoice(request)
        assert invalid_field(info) == field
    assert await matcher.get(placement.placement_id) == placement
    assert await matcher.outbox() == []


PORTAL_CASES: list[tuple[dict[str, object], str]] = [
    ({"portal_payment_id": ""}, "portal_payment_id"),
    ({"amount": Money(currency_code="USD", minor_units=-100)}, "amount.minor_units"),
    ({"amount": Money(currency_code="USD", minor_units=0)}, "amount.minor_units"),
    ({"amount": None}, "amount"),
    ({"pay_time": None}, "pay_time"),
    ({"fee_amount": Money(currency_code="USD", minor_units=-1)}, "fee_amount.minor_units"),
    ({"fee_amount": Money(currency_code="USD", minor_units=501)}, "fee_amount.minor_units"),
]


async def test_bad_portal_payment_changes_nothing(matcher: Matcher) -> None:
    (placement,) = await matcher.place(placement_input("70", 10_000))
    for change, field in PORTAL_CASES:
        request = pb.RecordPortalPaymentRequest(
            placement_id=placement.placement_id,
            portal_payment_id="pp-1",
            amount=usd(500),
            pay_time=ts(datetime.now(UTC)),
        )
        for name, value in change.items():
            if value is None:
                request.ClearField(name)  # type: ignore[arg-type]
            elif isinstance(value, Money):
                getattr(request, name).CopyFrom(value)
            else:
                setattr(request, name, value)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await matcher.stub.RecordPortalPayment(request)
        assert invalid_field(info) == field
    assert await matcher.get(placement.placement_id) == placement
    assert await matcher.outbox() == []


async def test_every_rpc_requires_the_internal_token(matcher_addr: str) -> None:
    from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc

    async with grpc.aio.insecure_channel(matcher_addr) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb_grpc.MatchingServiceStub(channel).GetPlacement(
                pb.GetPlacementRequest(placement_id="x")
            )
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
