"""The context a realm's changes are applied in (``SyncContext``): the tenant's rules and
intake mode, the company's today and clock, a reader at the caller's priority, a bounded
cache of customers' contacts, the calls to the matcher (retryable failures become
``Unavailable``; a refused entity is logged and skipped) and the record of placed
invoices. ``apply.py`` applies entities on it; ``ApplyStats`` counts what that did.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

import grpc
from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from aicollect.errors import Unavailable
from aicollect.matching.v1 import matching_service_pb2 as mpb
from services.integration.budget import Priority
from services.integration.models import PlacedInvoice
from services.integration.providers.base import AccountingFacts, EntityReader
from services.integration.sync import candidates, state
from services.integration.sync.context import SyncDeps
from services.integration.sync.rules import PlacementRules, get_rules

log = logging.getLogger(__name__)

Json = dict[str, Any]
T = TypeVar("T")

SOURCES = {
    "webhook": mpb.CHANGE_SOURCE_WEBHOOK,
    "cdc": mpb.CHANGE_SOURCE_CDC,
    "backfill": mpb.CHANGE_SOURCE_BACKFILL,
    "replay": mpb.CHANGE_SOURCE_REPLAY,
}
# The integration's platform names (``AccountingPlatform.name``) as matcher providers.
MATCHER_PROVIDERS: dict[str, mpb.Provider.ValueType] = {
    "qbo": mpb.PROVIDER_QBO,
    "xero": mpb.PROVIDER_XERO,
}
UPSERT_BATCH = 1000  # the matcher's limit per UpsertPlacements call
UPSERT_PARALLEL = 500  # a full batch is sent as concurrent calls of this size
MATCHER_TIMEOUT_S = 120.0
# Changes per ApplyAccountingChanges call (one matcher transaction), and how many such
# calls of invoices may run at once.
CHANGES_PER_CALL = 100
APPLY_CONCURRENCY = 8
# A matcher's answers that refuse a change as malformed (logged and skipped, not retried).
_REFUSED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
CUSTOMER_CACHE = 5000
_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}


@dataclass
class ApplyStats:
    invoices_seen: int = 0
    placements_created: int = 0
    placements_updated: int = 0
    invoice_decisions: int = 0
    payment_decisions: int = 0
    contacts_refreshed: int = 0
    skipped: int = 0
    candidates_staged: int = 0
    candidates_updated: int = 0

    def add(self, other: ApplyStats) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


def _what(change: mpb.AccountingChange) -> str:
    """A change as the logs name it (``payment 163``, ``invoice 70``, ``credit 9``)."""
    if change.HasField("payment"):
        return f"payment {change.payment.payment_id}"
    if change.HasField("credit"):
        return f"credit {change.credit.credit_id}"
    return f"invoice {change.invoice.invoice_id}"


class SyncContext:
    """What applying changes for one realm needs: rules, the company's today, a reader
    (at the caller's priority), the source recorded in the matcher's audit, and a
    bounded cache of customers."""

    def __init__(
        self,
        deps: SyncDeps,
        tenant_id: str,
        realm_id: str,
        *,
        rules: PlacementRules,
        today: date,
        source: str,
        source_event_id: str = "",
        reader: EntityReader,
        rules_version: int = 0,
    ) -> None:
        self.deps = deps
        self.tenant_id = tenant_id
        self.realm_id = realm_id
        self.rules = rules
        self.rules_version = rules_version  # recorded with the candidates it selects
        self.today = today
        self.source = SOURCES[source]
        self.source_event_id = source_event_id
        self.reader = reader
        self.facts: AccountingFacts = deps.platform.facts
        # The platform as the matcher's contract names it.
        self.provider = MATCHER_PROVIDERS[deps.platform.name]
        # A backfill run's id (``backfill:<run>``), recorded with what it places first.
        self.run_id = source_event_id.removeprefix("backfill:") if source == "backfill" else ""
        self._customers: OrderedDict[str, mpb.DebtorContact | None] = OrderedDict()
        self._intake_mode: str | None = None

    async def intake_mode(self) -> str:
        """The tenant's intake mode (``candidates.PREVIEW`` ...), read once per context."""
        if self._intake_mode is None:
            async with self.deps.sessions() as session:
                self._intake_mode = await candidates.intake_mode(
                    session, self.tenant_id, self.deps.platform.name
                )
        return self._intake_mode

    @classmethod
    async def open(
        cls,
        deps: SyncDeps,
        tenant_id: str,
        realm_id: str,
        *,
        source: str,
        priority: Priority,
        source_event_id: str = "",
    ) -> SyncContext:
        """Loads the rules and the company's today (asking QBO when the clock is stale)."""
        reader = deps.reader(tenant_id, realm_id, priority)
        async with deps.sessions() as session:
            stored = await get_rules(session, tenant_id)
            clock = state.clock_of(
                await state.load(session, tenant_id, realm_id), deps.platform.facts.parse_time
            )
        if clock is None or not state.clock_fresh(clock):
            clock = await observe_company_time(deps, reader)
        return cls(
            deps,
            tenant_id,
            realm_id,
            rules=stored.rules,
            rules_version=stored.version,
            today=clock.today(),
            source=source,
            source_event_id=source_event_id,
            reader=reader,
        )

    # -- customers ----------------------------------------------------------------------

    def remember_customers(self, customers: Iterable[Json]) -> None:
        for customer in customers:
            self._remember(self.facts.entity_id(customer), self.facts.debtor_contact(customer))

    def _remember(self, customer_id: str, contact: mpb.DebtorContact | None) -> None:
        self._customers[customer_id] = contact
        self._customers.move_to_end(customer_id)
        while len(self._customers) > CUSTOMER_CACHE:
            self._customers.popitem(last=False)

    async def customers(self, ids: Iterable[str]) -> dict[str, mpb.DebtorContact | None]:
        """The debtor contacts of these customers (None for one QBO no longer has), read in
        batches and kept (a bounded cache) so each customer is read and mapped once."""
        wanted = [i for i in dict.fromkeys(ids) if i]
        missing = [i for i in wanted if i not in self._customers]
        if missing:
            found = await self.reader.by_ids("Customer", missing)
            for customer_id in missing:
                customer = found.get(customer_id)
                contact = self.facts.debtor_contact(customer) if customer is not None else None
                self._remember(customer_id, contact)
        return {i: self._customers.get(i) for i in wanted}

    # -- matcher calls ------------------------------------------------------------------

    async def _matcher(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _RETRYABLE:
                raise Unavailable(
                    f"the matcher did not take {what} ({exc.code().name}); retrying later",
                    retry_after_seconds=5,
                ) from None
            raise

    async def upsert(self, inputs: Sequence[mpb.PlacementInput]) -> list[mpb.UpsertResult]:
        """``UpsertPlacements`` in batches; a batch the matcher refuses is retried item by
        item so one malformed invoice cannot hold the others back."""
        results: list[mpb.UpsertResult] = []
        for start in range(0, len(inputs), UPSERT_BATCH):
            batch = inputs[start : start + UPSERT_BATCH]
            parts = [batch[i : i + UPSERT_PARALLEL] for i in range(0, len(batch), UPSERT_PARALLEL)]
            replies = await asyncio.gather(*(self._upsert_part(part) for part in parts))
            for reply in replies:
                results.extend(reply)
        return results

    async def _upsert_part(self, part: Sequence[mpb.PlacementInput]) -> list[mpb.UpsertResult]:
        request = mpb.UpsertPlacementsRequest(
            tenant_id=self.tenant_id,
            provider=self.provider,
            company_id=self.realm_id,
            placements=part,
        )
        try:
            reply = await self._matcher(
                "the placements",
                lambda: self.deps.matching.UpsertPlacements(request, timeout=MATCHER_TIMEOUT_S),
            )
            return list(reply.results)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INVALID_ARGUMENT:
                raise
            if len(part) == 1:
                log.error(
                    "the matcher refused an invoice",
                    extra={
                        "tenant_id": self.tenant_id,
                        "realm_id": self.realm_id,
                        "qbo_invoice_id": part[0].invoice_id,
                        "detail": exc.details(),
                    },
                )
                return []
            out: list[mpb.UpsertResult] = []
            for item in part:
                out.extend(await self._upsert_part([item]))
            return out

    async def decide(
        self, changes: Sequence[mpb.AccountingChange], *, concurrent: bool = False
    ) -> list[int]:
        """Decides changes through ``ApplyAccountingChanges``, CHANGES_PER_CALL per call
        (one matcher transaction each), in order; ``concurrent`` (invoices, each deciding
        its own placement) lets up to APPLY_CONCURRENCY calls run at once. Per change: the
        number of decisions, or -1 when the matcher refused it as malformed (logged)."""
        parts = [
            changes[i : i + CHANGES_PER_CALL] for i in range(0, len(changes), CHANGES_PER_CALL)
        ]
        if not concurrent or len(parts) < 2:
            out: list[int] = []
            for part in parts:
                out += await self._decide_part(part)
            return out
        semaphore = asyncio.Semaphore(APPLY_CONCURRENCY)

        async def one(part: Sequence[mpb.AccountingChange]) -> list[int]:
            async with semaphore:
                return await self._decide_part(part)

        # Every call ends before the first error is raised (none is left running unseen).
        replies = await asyncio.gather(*(one(p) for p in parts), return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return [n for counts in replies if isinstance(counts, list) for n in counts]

    async def _decide_part(self, part: Sequence[mpb.AccountingChange]) -> list[int]:
        request = mpb.ApplyAccountingChangesRequest(
            tenant_id=self.tenant_id,
            provider=self.provider,
            company_id=self.realm_id,
            changes=part,
            source=self.source,
            source_event_id=self.source_event_id,
        )
        try:
            reply = await self._matcher(
                f"{len(part)} accounting changes",
                lambda: self.deps.matching.ApplyAccountingChanges(
                    request, timeout=MATCHER_TIMEOUT_S
                ),
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                # A matcher older than this process (during a rolling upgrade): one call
                # per change, as before ApplyAccountingChanges existed.
                return [await self._decide_alone(change) for change in part]
            if exc.code() not in _REFUSED:
                raise
            for change in part:
                self._refused(change, exc.details() or "")
            return [-1] * len(part)
        counts: list[int] = []
        for change, result in zip(part, reply.results, strict=True):
            if result.HasField("refusal"):
                self._refused(change, result.refusal.message)
                counts.append(-1)
            else:
                self._count(result.decisions)
                counts.append(len(result.decisions))
        return counts

    async def _decide_alone(self, change: mpb.AccountingChange) -> int:
        try:
            decisions = await self._matcher(_what(change), lambda: self._alone(change))
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _REFUSED:
                raise
            self._refused(change, exc.details() or "")
            return -1
        self._count(decisions)
        return len(decisions)

    async def _alone(self, change: mpb.AccountingChange) -> Sequence[mpb.PlacementDecision]:
        """One change through its own call (ApplyAccountingPayment, ...Credit, ...Invoice)."""
        kind = change.WhichOneof("change") or "invoice"
        stub = self.deps.matching
        calls: dict[str, tuple[Any, Any]] = {
            "payment": (mpb.ApplyAccountingPaymentRequest, stub.ApplyAccountingPayment),
            "credit": (mpb.ApplyAccountingCreditRequest, stub.ApplyAccountingCredit),
            "invoice": (mpb.ApplyAccountingInvoiceRequest, stub.ApplyAccountingInvoice),
        }
        request_type, call = calls[kind]
        request = request_type(
            tenant_id=self.tenant_id,
            provider=self.provider,
            company_id=self.realm_id,
            source=self.source,
            source_event_id=self.source_event_id,
        )
        getattr(request, kind).CopyFrom(getattr(change, kind))
        decisions: Sequence[mpb.PlacementDecision] = (
            await call(request, timeout=MATCHER_TIMEOUT_S)
        ).decisions
        return decisions

    def _refused(self, change: mpb.AccountingChange, detail: str) -> None:
        log.error(
            "the matcher refused an accounting change",
            extra={
                "tenant_id": self.tenant_id,
                "realm_id": self.realm_id,
                "what": _what(change),
                "detail": detail,
            },
        )

    def _count(self, decisions: Iterable[mpb.PlacementDecision]) -> None:
        outcomes = self.deps.metrics.match_outcomes
        for decision in decisions:
            outcomes.labels(mpb.DecisionOutcome.Name(decision.outcome)).inc()

    async def placed(
        self, *, customer_ids: Sequence[str] = (), invoice_ids: Sequence[str] = ()
    ) -> dict[str, str]:
        """Placed invoices (invoice id -> customer id) of these customers or ids."""
        if not customer_ids and not invoice_ids:
            return {}
        conditions = []
        if customer_ids:
            conditions.append(PlacedInvoice.qbo_customer_id.in_(list(customer_ids)))
        if invoice_ids:
            conditions.append(PlacedInvoice.qbo_invoice_id.in_(list(invoice_ids)))
        async with self.deps.sessions() as session:
            rows = await session.execute(
                select(PlacedInvoice.qbo_invoice_id, PlacedInvoice.qbo_customer_id).where(
                    PlacedInvoice.tenant_id == self.tenant_id,
                    PlacedInvoice.realm_id == self.realm_id,
                    or_(*conditions),
                )
            )
            return dict(rows.tuples().all())

    async def delivered_versions(self, invoice_ids: Sequence[str]) -> dict[str, str]:
        """The invoice version the matcher was last given, for placed invoices."""
        if not invoice_ids:
            return {}
        async with self.deps.sessions() as session:
            rows = await session.execute(
                select(PlacedInvoice.qbo_invoice_id, PlacedInvoice.sync_token).where(
                    PlacedInvoice.tenant_id == self.tenant_id,
                    PlacedInvoice.realm_id == self.realm_id,
                    PlacedInvoice.qbo_invoice_id.in_(list(invoice_ids)),
                )
            )
            return dict(rows.tuples().all())

    async def record_placed(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Remembers placed invoices: (invoice id, customer id, placement id, the version
        the matcher now has). One statement for the whole batch (arrays, ``unnest``)."""
        if not rows:
            return
        async with self.deps.sessions.begin() as session:
            await self.record_placed_in(session, rows)

    async def record_placed_in(
        self, session: AsyncSession, rows: Sequence[tuple[str, str, str, str]]
    ) -> None:
        """``record_placed`` inside the caller's transaction (a confirmation records the
        placements and marks its candidates confirmed in one)."""
        if not rows:
            return
        invoice_ids, customer_ids, placement_ids, tokens = (
            list(c) for c in zip(*rows, strict=True)
        )
        await session.execute(
            _RECORD_PLACED,
            {
                "tenant": self.tenant_id,
                "realm": self.realm_id,
                "run": self.run_id,
                "invoices": invoice_ids,
                "customers": customer_ids,
                "placements": placement_ids,
                "tokens": tokens,
            },
        )


_RECORD_PLACED = text(
    """
    INSERT INTO integration.placed_invoices AS p
        (tenant_id, realm_id, qbo_invoice_id, qbo_customer_id, placement_id, sync_token,
         placed_by_run)
    SELECT :tenant, :realm, i, c, pl, t, :run
    FROM unnest(
        CAST(:invoices AS text[]), CAST(:customers AS text[]),
        CAST(:placements AS text[]), CAST(:tokens AS text[])
    ) AS u(i, c, pl, t)
    ON CONFLICT (tenant_id, realm_id, qbo_invoice_id) DO UPDATE SET
        qbo_customer_id = excluded.qbo_customer_id,
        placement_id = excluded.placement_id,
        sync_token = excluded.sync_token
    WHERE (p.qbo_customer_id, p.placement_id, p.sync_token)
        IS DISTINCT FROM (excluded.qbo_customer_id, excluded.placement_id, excluded.sync_token)
    """
)


async def observe_company_time(deps: SyncDeps, reader: EntityReader) -> state.CompanyClock:
    """Reads QBO's time for the company and remembers it (the company's clock)."""
    qbo_time = await reader.company_time()
    return await remember_company_time(deps, reader.tenant_id, reader.realm_id, qbo_time)


async def remember_company_time(
    deps: SyncDeps, tenant_id: str, realm_id: str, qbo_time: str
) -> state.CompanyClock:
    """Stores QBO's time for the company as just seen; the company's clock runs from it."""
    seen_at = state.now()
    clock = state.CompanyClock(deps.platform.facts.parse_time(qbo_time), seen_at)
    await state.update_state(
        deps.sessions, tenant_id, realm_id, company_time=qbo_time, company_time_seen_at=seen_at
    )
    return clock
