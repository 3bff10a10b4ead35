"""An in-memory store that drives the matcher's pure decision table, with no database.

:class:`Books` keeps what the matcher's tables would hold (placements with their rows,
payments seen) as frozen values and plays each accounting fact the way
``services/matcher/matching.py`` does: pick the placements the fact concerns (the table's
own ``PaymentScope``), build their ledgers, decide, keep the ledgers the effects leave.
The time is passed in, one tick per fact.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from services.matcher.decisions.rules.invoices import decide_invoice
from services.matcher.decisions.rules.payments import (
    decide_payment,
    payment_order,
    payment_scope,
)
from services.matcher.decisions.rules.people import restore
from services.matcher.decisions.rules.unapplied import pause_new_placements
from services.matcher.decisions.values import (
    Context,
    Effect,
    Ledger,
    OutreachEvent,
    PaymentTimes,
    PlacementState,
    SeenPayment,
)
from services.matcher.domain import EntityState, EventType, InvoiceIn, PaymentIn, Status

TENANT = "t"
REALM = "r"
START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def placement(
    invoice_id: str, balance: int, *, customer: str = "c1", linked: tuple[str, ...] = ()
) -> PlacementState:
    """A placement as intake creates it (``UpsertPlacements``)."""
    return PlacementState(
        placement_id=f"p-{invoice_id}",
        tenant_id=TENANT,
        provider="qbo",
        company_id=REALM,
        invoice_id=invoice_id,
        doc_number=invoice_id,
        customer_id=customer,
        debtor={},
        currency_code="USD",
        original_minor_units=balance,
        balance_minor_units=balance,
        invoice_date=None,
        due_date=None,
        status=Status.ACTIVE.value,
        resolution_reason="",
        review_reason="",
        resolving_payment_id="",
        version=1,
        updated_at=START,
        resolved_at=None,
        cause_payment_id="",
        cause_version=None,
        restore_balance_minor_units=None,
        oob_paid_minor_units=0,
        mirror_pending_minor_units=0,
        unseen_paid_minor_units=0,
        invoice_version="0",
        invoice_version_sequence=0,
        invoice_state=EntityState.ACTIVE.value,
        invoice_updated_at=START,
        invoice_total_minor_units=balance,
        invoice_balance_minor_units=balance,
        invoice_linked_payment_ids=linked,
        review_flag="",
        review_flag_reason="",
        flagged_at=None,
    )


@dataclass
class Step:
    """What one fact did: the effects (with their records) and the placements before."""

    effects: tuple[Effect, ...]
    before: dict[str, PlacementState]

    @property
    def events(self) -> list[OutreachEvent]:
        return [r for e in self.effects for r in e.records if isinstance(r, OutreachEvent)]


@dataclass
class Books:
    """The matcher's state for one company, in memory (``provider``: whose books the
    payments read are in; place placements of the same provider)."""

    provider: str = "qbo"
    tolerance: int = 1
    window: timedelta = timedelta(minutes=60)
    ledgers: dict[str, Ledger] = field(default_factory=dict)
    seen: dict[str, SeenPayment] = field(default_factory=dict)
    now: datetime = START

    def place(self, p: PlacementState) -> Step:
        """A new placement, paused at once when unapplied money already seen covers it
        (``matching.upsert_placements``). Intake reads no time of its own: no tick."""
        ledger = Ledger(
            placement=p,
            applications={},
            exclusions={},
            portal_payments=(),
            double_payment_ids=frozenset(),
            payment_times={},
        )
        self.ledgers[p.placement_id] = ledger
        ctx = Context(self.tolerance, self.window, self.now)
        return self._keep(tuple(pause_new_placements([self._ledger(ledger)], ctx)))

    def _tick(self) -> Context:
        self.now += timedelta(seconds=1)
        return Context(self.tolerance, self.window, self.now)

    def _ledger(self, ledger: Ledger, payment_id: str = "") -> Ledger:
        """A ledger as the snapshot loads it: payment times and unapplied payments."""
        p = ledger.placement
        times = {
            pid: PaymentTimes(s.provider_created_at, s.provider_updated_at)
            for pid in ledger.applications
            if (s := self.seen.get(pid)) is not None
        }
        unapplied = tuple(
            s
            for pid, s in sorted(self.seen.items())
            if (
                s.customer_id == p.customer_id
                and s.unapplied_minor_units > 0
                and s.state == EntityState.ACTIVE.value
            )
            or pid == payment_id
        )
        return replace(ledger, payment_times=times, unapplied=unapplied)

    def _keep(self, effects: tuple[Effect, ...]) -> Step:
        before = {pid: ledger.placement for pid, ledger in self.ledgers.items()}
        for effect in effects:
            if effect.ledger is not None:
                self.ledgers[effect.ledger.id] = effect.ledger
        return Step(effects, before)

    def pay(self, payment: PaymentIn) -> Step:
        ctx = self._tick()
        pid = payment.payment_id
        first_sight = pid not in self.seen
        seen = self.seen.get(pid) or SeenPayment(
            tenant_id=TENANT,
            provider=self.provider,
            company_id=REALM,
            payment_id=pid,
            version="",
            version_sequence=0,
            state="",
            currency_code=payment.currency,
            total_minor_units=0,
            unapplied_minor_units=0,
            customer_id=payment.customer_id,
            invoice_amounts={},
            credit_memo_ids=(),
            paused_placement_ids=(),
            provider_created_at=None,
            provider_updated_at=None,
            first_seen_at=ctx.now,
            updated_at=ctx.now,
        )
        self.seen[pid] = seen
        if payment_order(seen, payment, first_sight) <= 0:
            return self._keep(())
        scope = payment_scope(payment, seen, first_sight)
        ordered = [self.ledgers[k] for k in sorted(self.ledgers)]
        gone = [self._ledger(x) for x in ordered if scope.gone(x.placement)]
        main = [self._ledger(x, pid) for x in ordered if scope.covers(x.placement)]
        decided = decide_payment(payment, seen, first_sight, gone, main, ctx)
        self.seen[pid] = decided.seen
        return self._keep(decided.effects)

    def invoice(self, invoice: InvoiceIn) -> Step:
        ctx = self._tick()
        found = [x for x in self.ledgers.values() if x.placement.invoice_id == invoice.invoice_id]
        if not found:
            return self._keep(())
        return self._keep(tuple(decide_invoice(self._ledger(found[0]), invoice, ctx)))

    def restore(self, placement_id: str) -> Step:
        ctx = self._tick()
        ledger = self._ledger(self.ledgers[placement_id])
        effect = restore(ledger, ledger.placement.version, "support", "checked", ctx)
        return self._keep((effect,))

    def state(self, placement_id: str) -> tuple[str, int]:
        p = self.ledgers[placement_id].placement
        return p.status, p.balance_minor_units

    def resumed(self, step: Step) -> list[str]:
        """Placements the step brought back to ACTIVE, or sent a RESUME for."""
        back = [
            pid
            for pid, before in step.before.items()
            if before.status != Status.ACTIVE.value
            and self.ledgers[pid].placement.status == Status.ACTIVE.value
        ]
        return back + [e.placement_id for e in step.events if e.type is EventType.RESUME]
