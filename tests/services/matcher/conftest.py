"""Fixtures for the matcher tests: a client for the in-process matcher, request builders.

Every test talks to the real gRPC server (``matcher_addr``) over a real PostgreSQL database;
the outbox is read through ``StreamOutreachEvents`` or, to prove that nothing else was
emitted, straight from the table.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import pytest_asyncio
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from aicollect.matching.v1 import matching_admin_service_pb2 as mapb
from aicollect.matching.v1 import matching_admin_service_pb2_grpc as magrpc
from aicollect.matching.v1 import matching_service_pb2 as pb
from aicollect.matching.v1 import matching_service_pb2_grpc as pb_grpc
from aicollect.rpc.client import internal_channel
from aicollect.rpc.errors import error_info
from aicollect.type.v1.money_pb2 import Money
from services.matcher.models import AuditEvent, OutreachEventRow
from tests.conftest import INTERNAL_TOKEN

TENANT = "acme"
REALM = "9130"
CUSTOMER = "20"
NOW = datetime.now(UTC).replace(microsecond=0)


def usd(minor_units: int, currency: str = "USD") -> Money:
    return Money(currency_code=currency, minor_units=minor_units)


def ts(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def placement_input(
    invoice_id: str = "70",
    balance: int = 10_000,
    *,
    total: int | None = None,
    currency: str = "USD",
    customer: str = CUSTOMER,
    doc_number: str | None = None,
    version: str = "0",
    email: str = "ap@redrock.example",
    updated: datetime | None = None,
    linked_payments: Sequence[str] = (),
) -> pb.PlacementInput:
    return pb.PlacementInput(
        invoice_id=invoice_id,
        doc_number=doc_number if doc_number is not None else f"10{invoice_id}",
        customer_id=customer,
        debtor=pb.DebtorContact(
            display_name="Red Rock Diner",
            email=email,
            phones=[pb.PhoneNumber(type=pb.PHONE_TYPE_PRIMARY, number="(415) 444-6538")],
            billing_address=pb.PostalAddress(lines=["12 Ocean Dr."], city="Half Moon Bay"),
        ),
        total_amount=usd(total if total is not None else balance, currency),
        balance=usd(balance, currency),
        invoice_date="2026-09-01",
        due_date="2026-10-01",
        version=version,
        last_updated_time=ts(updated or NOW - timedelta(days=30)),
        linked_txns=[
            pb.LinkedTxn(txn_id=p, txn_type=pb.LINKED_TXN_TYPE_PAYMENT) for p in linked_payments
        ],
    )


def qbo_payment(
    payment_id: str,
    lines: Sequence[tuple[str, int]] = (),
    *,
    version: str = "0",
    total: int | None = None,
    unapplied: int = 0,
    currency: str = "USD",
    customer: str = CUSTOMER,
    state: pb.EntityState.ValueType = pb.ENTITY_STATE_ACTIVE,
    credit_memos: Sequence[tuple[str, int]] = (),
    created: datetime | None = None,
    updated: datetime | None = None,
) -> pb.AccountingPayment:
    """A QBO payment; ``lines`` are (invoice id, amount) pairs."""
    payment_lines = [
        pb.PaymentLine(
            linked_txn_id=invoice_id,
            linked_txn_type=pb.LINKED_TXN_TYPE_INVOICE,
            amount=usd(amount, currency),
        )
        for invoice_id, amount in lines
    ] + [
        pb.PaymentLine(
            linked_txn_id=memo_id,
            linked_txn_type=pb.LINKED_TXN_TYPE_CREDIT_MEMO,
            amount=usd(amount, currency),
        )
        for memo_id, amount in credit_memos
    ]
    applied = sum(a for _, a in lines) - sum(a for _, a in credit_memos)
    when = created or datetime.now(UTC)
    return pb.AccountingPayment(
        payment_id=payment_id,
        version=version,
        txn_date=when.date().isoformat(),
        total_amount=usd(total if total is not None else applied + unapplied, currency),
        unapplied_amount=usd(unapplied, currency),
        customer_id=customer,
        lines=payment_lines,
        state=state,
        create_time=ts(when),
        last_updated_time=ts(updated or datetime.now(UTC)),
    )


def qbo_invoice(
    invoice_id: str,
    balance: int,
    *,
    total: int = 10_000,
    version: str = "1",
    state: pb.EntityState.ValueType = pb.ENTITY_STATE_ACTIVE,
    linked: Sequence[tuple[str, pb.LinkedTxnType.ValueType]] = (),
    currency: str = "USD",
    updated: datetime | None = None,
) -> pb.AccountingInvoice:
    """A QBO invoice; ``linked`` are (txn id, LinkedTxnType) pairs."""
    return pb.AccountingInvoice(
        invoice_id=invoice_id,
        version=version,
        doc_number=f"10{invoice_id}",
        total_amount=usd(total, currency),
        balance=usd(balance, currency),
        due_date="2026-10-01",
        customer_id=CUSTOMER,
        state=state,
        last_updated_time=ts(updated or datetime.now(UTC)),
        linked_txns=[pb.LinkedTxn(txn_id=i, txn_type=t) for i, t in linked],
    )


@dataclass
class Matcher:
    """The matcher as its callers see it, plus read access to the outbox for assertions."""

    stub: pb_grpc.MatchingServiceAsyncStub
    admin: magrpc.MatchingAdminServiceAsyncStub
    sessions: async_sessionmaker[AsyncSession]

    async def place(self, *inputs: pb.PlacementInput, tenant: str = TENANT) -> list[pb.Placement]:
        reply = await self.stub.UpsertPlacements(
            pb.UpsertPlacementsRequest(
                tenant_id=tenant,
                provider=pb.PROVIDER_QBO,
                company_id=REALM,
                placements=list(inputs or [placement_input()]),
            )
        )
        return [await self.get(r.placement_id) for r in reply.results]

    async def get(self, placement_id: str) -> pb.Placement:
        reply = await self.stub.GetPlacement(pb.GetPlacementRequest(placement_id=placement_id))
        return reply.placement

    async def pay(
        self,
        payment: pb.AccountingPayment,
        source: pb.ChangeSource.ValueType = pb.CHANGE_SOURCE_WEBHOOK,
        tenant: str = TENANT,
    ) -> list[pb.PlacementDecision]:
        reply = await self.stub.ApplyAccountingPayment(
            pb.ApplyAccountingPaymentRequest(
                tenant_id=tenant,
                provider=pb.PROVIDER_QBO,
                company_id=REALM,
                payment=payment,
                source=source,
                source_event_id="evt-1",
            )
        )
        return list(reply.decisions)

    async def invoice(
        self,
        invoice: pb.AccountingInvoice,
        source: pb.ChangeSource.ValueType = pb.CHANGE_SOURCE_WEBHOOK,
    ) -> list[pb.PlacementDecision]:
        reply = await self.stub.ApplyAccountingInvoice(
            pb.ApplyAccountingInvoiceRequest(
                tenant_id=TENANT,
                provider=pb.PROVIDER_QBO,
                company_id=REALM,
                invoice=invoice,
                source=source,
            )
        )
        return list(reply.decisions)

    async def portal(
        self,
        placement_id: str,
        portal_id: str,
        amount: int,
        *,
        when: datetime | None = None,
        fee: int | None = None,
        currency: str = "USD",
    ) -> pb.RecordPortalPaymentResponse:
        request = pb.RecordPortalPaymentRequest(
            placement_id=placement_id,
            portal_payment_id=portal_id,
            amount=usd(amount, currency),
            pay_time=ts(when or datetime.now(UTC)),
        )
        if fee is not None:
            request.fee_amount.CopyFrom(usd(fee, currency))
        return await self.stub.RecordPortalPayment(request)

    async def restore(
        self,
        placement: pb.Placement,
        *,
        actor: str = "dana@support",
        reason: str = "ticket 812: the bookkeeper applied a credit memo by mistake",
        version: int | None = None,
    ) -> pb.Placement:
        reply = await self.stub.RestorePlacement(
            pb.RestorePlacementRequest(
                placement_id=placement.placement_id,
                expected_version=placement.version if version is None else version,
                actor=actor,
                reason=reason,
            )
        )
        return reply.placement

    async def set_settings(
        self, *, tolerance: int | None = None, window: int | None = None
    ) -> None:
        settings = mapb.MatchingSettings()
        paths: list[str] = []
        if tolerance is not None:
            settings.oob_amount_tolerance_cents = tolerance
            paths.append("oob_amount_tolerance_cents")
        if window is not None:
            settings.oob_match_window_minutes = window
            paths.append("oob_match_window_minutes")
        await self.admin.UpdateMatchingSettings(
            mapb.UpdateMatchingSettingsRequest(
                settings=settings,
                update_mask=FieldMask(paths=paths),
                actor="ops@ai-collect",
                reason="test",
            )
        )

    async def outbox(self, placement_id: str | None = None) -> list[tuple[str, str, int]]:
        """(type, status, balance) of every outreach event, in stream order."""
        async with self.sessions() as session:
            stmt = select(OutreachEventRow).order_by(OutreachEventRow.id)
            if placement_id:
                stmt = stmt.where(OutreachEventRow.placement_id == placement_id)
            rows = (await session.execute(stmt)).scalars()
            return [(r.type, r.status, r.balance_minor_units) for r in rows]

    async def audit_count(self) -> int:
        async with self.sessions() as session:
            return int((await session.execute(select(func.count(AuditEvent.id)))).scalar_one())

    async def audit(self, placement_id: str) -> list[pb.AuditEvent]:
        reply = await self.stub.ListAuditEvents(
            pb.ListAuditEventsRequest(placement_id=placement_id, page_size=1000)
        )
        return list(reply.events)

    async def read_stream(
        self, count: int, *, cursor: str = "", tenant: str = "", within: float = 5.0
    ) -> list[pb.OutreachEvent]:
        """Reads exactly ``count`` events from a fresh stream, then hangs up."""
        call = self.stub.StreamOutreachEvents(
            pb.StreamOutreachEventsRequest(cursor=cursor, tenant_id=tenant)
        )
        events: list[pb.OutreachEvent] = []
        try:
            async with asyncio.timeout(within):
                async for message in call:
                    events.append(message.event)
                    if len(events) == count:
                        break
        finally:
            call.cancel()
        return events


@pytest_asyncio.fixture
async def matcher(
    matcher_addr: str, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Matcher]:
    channel = internal_channel(matcher_addr, INTERNAL_TOKEN)
    try:
        yield Matcher(
            pb_grpc.MatchingServiceStub(channel),
            magrpc.MatchingAdminServiceStub(channel),
            sessions,
        )
    finally:
        await channel.close(None)


def invalid_field(error: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> str:
    """The field an INVALID_ARGUMENT names in its ErrorInfo."""
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, error.value.details()
    info = error_info(error.value)
    assert info is not None
    return str(info.metadata["field"])


def reason_of(error: pytest.ExceptionInfo[grpc.aio.AioRpcError]) -> str:
    info = error_info(error.value)
    assert info is not None
    return str(info.reason)


def outcomes(decisions: Sequence[pb.PlacementDecision]) -> list[str]:
    return [pb.DecisionOutcome.Name(d.outcome).removeprefix("DECISION_OUTCOME_") for d in decisions]


def status_name(placement: pb.Placement | pb.PlacementDecision) -> str:
    return pb.PlacementStatus.Name(placement.status).removeprefix("PLACEMENT_STATUS_")
