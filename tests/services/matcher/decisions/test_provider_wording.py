"""The table's texts name the placement's own books: a Xero creditor reads "Xero payment
…" and "in Xero" on its timeline (review and resolution reasons, audit entries, outreach
events, the answers), never "QBO"; QuickBooks' wording is unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from hypothesis import given

from services.matcher.decisions.outcomes import ACTION_EXCLUSION_LIFTED
from services.matcher.decisions.values import AuditEntry, OutreachEvent
from services.matcher.domain import (
    EntityState,
    InvoiceIn,
    LinkType,
    PaymentIn,
    PaymentLineIn,
    Status,
)
from tests.helpers.histories import (
    TABLE,
    Action,
    Player,
    balances,
    histories,
)
from tests.helpers.table import START, Books, Step, placement


def _books(provider: str, *balances: int) -> Books:
    books = Books(provider=provider)
    for n, balance in enumerate(balances, start=1):
        books.place(replace(placement(f"i{n}", balance), provider=provider))
    return books


def _texts(step: Step | None, books: Books) -> list[str]:
    """Every text the step wrote, then every placement's reasons as they now are."""
    out: list[str] = []
    for effect in step.effects if step is not None else ():
        if effect.decision is not None:
            out.append(effect.decision.detail)
        for record in effect.records:
            if isinstance(record, AuditEntry):
                out.append(record.reason)
                out.extend(_strings(record.details))
            elif isinstance(record, OutreachEvent):
                out.append(record.reason)
    for ledger in books.ledgers.values():
        p = ledger.placement
        out += [p.review_reason, p.resolution_reason, p.review_flag_reason]
    return out


def _strings(details: Mapping[str, Any]) -> list[str]:
    return [v for v in details.values() if isinstance(v, str)]


def _payment(pid: str, version: str, *, applied: int = 0, unapplied: int = 0) -> PaymentIn:
    state = EntityState.DELETED if version == "deleted" else EntityState.ACTIVE
    lines = (PaymentLineIn("i1", LinkType.INVOICE, applied),) if applied else ()
    return PaymentIn(
        payment_id=pid,
        version=version,
        state=state,
        currency="USD",
        total=applied + unapplied,
        unapplied=unapplied,
        customer_id="c1",
        lines=lines,
        create_time=START,
        last_updated=START + timedelta(minutes=len(version)),
    )


def test_a_xero_placement_reads_xero_in_its_reasons() -> None:
    books = _books("xero", 10_000, 20_000)
    texts: list[str] = []

    paid = books.pay(_payment("pay-1", "0", applied=10_000))
    assert books.state("p-i1") == (Status.RESOLVED_OUT_OF_BAND.value, 0)
    assert paid.effects[0].decision is not None
    assert paid.effects[0].decision.detail == (
        "Xero payment pay-1 applied 100.00 USD to invoice i1; 0.00 USD left"
    )
    texts += _texts(paid, books)

    deleted = books.pay(_payment("pay-1", "deleted"))
    p1 = books.ledgers["p-i1"].placement
    assert p1.status == Status.NEEDS_REVIEW.value
    assert p1.review_reason == (
        "Xero payment pay-1 (deleted), applied to invoice i1 after which the placement was "
        "resolved_out_of_band, was deleted in Xero; 100.00 USD owed again. Outreach stays "
        "stopped until a human reviews it"
    )
    texts += _texts(deleted, books)

    voided = books.invoice(
        InvoiceIn(
            invoice_id="i2",
            version="1",
            state=EntityState.VOIDED,
            currency="USD",
            total=0,
            balance=0,
            doc_number="i2",
            due_date=None,
            customer_id="c1",
            last_updated=START + timedelta(hours=1),
            linked=(),
        )
    )
    p2 = books.ledgers["p-i2"].placement
    assert p2.status == Status.PAUSED_PENDING_REVIEW.value
    assert p2.review_reason == "invoice i2 was voided in Xero; review before outreach resumes"
    texts += _texts(voided, books)

    assert texts
    assert not [t for t in texts if "QBO" in t]


def test_unapplied_xero_money_pauses_in_xero_words() -> None:
    books = _books("xero", 10_000)
    paused = books.pay(_payment("over-1", "0", unapplied=10_000))
    p = books.ledgers["p-i1"].placement
    assert p.status == Status.PAUSED_PENDING_REVIEW.value
    assert p.review_reason.startswith("Xero payment over-1 from customer c1 has 100.00 USD")
    assert not [t for t in _texts(paused, books) if "QBO" in t]


def test_a_restore_lifted_by_a_xero_change_names_xero_and_its_version() -> None:
    books = _books("xero", 10_000)
    books.pay(_payment("pay-1", "0", applied=10_000))
    restored = books.restore("p-i1")
    assert books.state("p-i1") == (Status.ACTIVE.value, 10_000)
    # Changed in Xero since the restore: matched again, said with Xero's word for a version.
    changed = books.pay(_payment("pay-1", "01", applied=10_000))
    lifted = [
        r.reason
        for e in changed.effects
        for r in e.records
        if isinstance(r, AuditEntry) and r.action == ACTION_EXCLUSION_LIFTED
    ]
    assert lifted == [
        "Xero payment pay-1 changed in Xero after the restore (version 0 -> 01); "
        "it is matched again"
    ]
    texts = _texts(restored, books) + _texts(changed, books)
    assert not [t for t in texts if "QBO" in t]


@TABLE
@given(b1=balances, b2=balances, history=histories)
def test_xero_says_what_qbo_says_in_its_own_name(b1: int, b2: int, history: list[Action]) -> None:
    """The same history on QuickBooks and on Xero writes the same texts, but for the
    provider's name (and what each calls a version)."""
    totals = {"i1": b1, "i2": b2}
    said: dict[str, list[str]] = {}
    for provider in ("qbo", "xero"):
        books = _books(provider, b1, b2)
        player = Player(books)
        said[provider] = [
            t for action in history for t in _texts(player.play(action, totals), books)
        ]
    xero = said["xero"]
    assert not [t for t in xero if "QBO" in t]
    assert xero == [t.replace("QBO", "Xero").replace("sync token", "version") for t in said["qbo"]]
