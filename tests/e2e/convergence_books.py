"""The books of one company in the convergence test, and the differences between a run
with perfect webhooks and a lossy one that the rules allow (docs/matching.md): a version
that vanished before one run read it.

The test module plays the scripts; this module reads the companies back and judges."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from sqlalchemy import text

from aicollect.matching.v1 import matching_service_pb2 as mpb
from tests.e2e.pipeline import Pipeline


@dataclass
class Company:
    realm: str
    tenant: str
    customers: dict[str, str]
    invoices: list[str]
    payments: list[str]


async def control(
    p: Pipeline, realm: str, method: str, path: str, body: object = None
) -> dict[str, Any]:
    url = (
        f"{p.emulator.url}/_emulator/companies/{realm}/{path}"
        if path
        else (f"{p.emulator.url}/_emulator/companies")
    )
    async with aiohttp.ClientSession() as http, http.request(method, url, json=body or {}) as r:
        payload: dict[str, Any] = await r.json()
        return payload if r.status in (200, 201) else {"refused": payload, "status": r.status}


async def diagnose(p: Pipeline, company: Company, indexes: list[int]) -> str:
    """What the perfect run's company saw, to tell a lost change from a wrong decision:
    the emulator's deliveries and drops for its realm, its inbox rows, each differing
    placement's audit trail."""
    lines: list[str] = []
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{p.emulator.url}/_emulator/deliveries") as r,
    ):
        log = await r.json()
    for entry in log["deliveries"]:
        mine = [e for e in entry["events"] if e["realm_id"] == company.realm]
        if mine:
            lines.append(f"delivery {entry['seq']} status {entry['status']} {mine}")
    lines += [f"dropped {d}" for d in log["dropped"] if d["realm_id"] == company.realm]
    async with p.stack.deps.sessions() as session:
        rows = await session.execute(
            text(
                "SELECT id, entity, entity_id, operation, occurred_at, status, attempts, "
                "last_error FROM integration.webhook_inbox WHERE realm_id = :r ORDER BY id"
            ),
            {"r": company.realm},
        )
        lines += [f"inbox {tuple(row)}" for row in rows]
    for index in indexes:
        placement = await _placement(p, company, index)
        audit = await p.matching.ListAuditEvents(
            mpb.ListAuditEventsRequest(
                tenant_id=company.tenant, placement_id=placement.placement_id, page_size=1000
            )
        )
        lines += [f"audit[{index}] {e.action} {dict(e.details)}" for e in audit.events]
    return "\n".join(lines)


async def vanished_unseen(p: Pipeline, companies: tuple[Company, Company], index: int) -> bool:
    """The differences the matching rules allow (docs/matching.md): both runs stopped
    outreach for a person at the same balance, for reasons that follow the read order; or
    a version of a payment that was gone (deleted, voided or edited) before one run's
    matcher read it.
    The run that read it stopped outreach on it and, when it changed, flagged the placement
    for review (a human decides); the other never saw that version and
    follows QBO (active, or paused by another rule). Nothing can tell the second run
    otherwise: QBO keeps no history of payment or invoice versions, and a deleted payment's
    CDC entry has only its id."""
    states = [await _placement(p, c, index) for c in companies]
    if states[0].balance.minor_units != states[1].balance.minor_units:
        return False
    statuses = [s.status for s in states]
    # The run that read the version now gone stopped outreach and asks a human: flagged for
    # review, or paused for review by unapplied money (never resumed by itself either).
    stopped = (mpb.PLACEMENT_STATUS_NEEDS_REVIEW, mpb.PLACEMENT_STATUS_PAUSED_PENDING_REVIEW)
    if statuses[0] != statuses[1] and all(s in stopped for s in statuses):
        # Both stopped outreach for a person at the same balance; which review reason comes
        # first follows the order the versions were read in (a credit taken off an invoice
        # that is then voided: "flagged" when the credit's change is read first, "invoice
        # voided" when the void is). Nothing reaches the debtor either way.
        return True
    if mpb.PLACEMENT_STATUS_NEEDS_REVIEW in statuses:
        flagged = statuses.index(mpb.PLACEMENT_STATUS_NEEDS_REVIEW)
    elif sorted(statuses) == sorted((mpb.PLACEMENT_STATUS_ACTIVE, stopped[1])):
        flagged = statuses.index(stopped[1])
    else:
        return False
    other = 1 - flagged
    if statuses[other] not in (mpb.PLACEMENT_STATUS_ACTIVE, *stopped):
        return False
    seen_flagged = await _payment_versions(p, companies[flagged], states[flagged])
    seen_other = await _payment_versions(p, companies[other], states[other])
    for n, pid in enumerate(companies[flagged].payments):
        # The flag may name the payment, or the invoice version that showed its change
        # before the payment's own version was read (docs/matching.md, "A payment's edit the
        # invoice version already shows"); either way the run read a version now gone.
        now = await _version(p, companies[flagged], pid)
        other_pid = companies[other].payments[n]
        gone = {t for q, t in seen_flagged if q == pid and t != now}
        if gone - {t for q, t in seen_other if q == other_pid}:
            return True
    return await _changed_invoice_version_unseen(p, companies, (flagged, other), index, states)


async def _changed_invoice_version_unseen(
    p: Pipeline,
    companies: tuple[Company, Company],
    runs: tuple[int, int],
    index: int,
    states: list[mpb.Placement],
) -> bool:
    """The flagged run read a version of the invoice, now gone, that showed a payment
    which has been edited, deleted or voided since; the other run never read that version
    (it read the payment only after the change, so never saw the money it no longer shows)."""
    flagged, other = runs
    seen = [await _invoice_versions(p, companies[n], states[n]) for n in (0, 1)]
    invoice = (
        await control(
            p, companies[flagged].realm, "GET", f"invoices/{companies[flagged].invoices[index]}"
        )
    )["Invoice"]
    changed = {
        pid
        for pid in companies[flagged].payments
        if await _version(p, companies[flagged], pid) != "0"
    }
    return any(
        version != str(invoice["SyncToken"]) and version not in seen[other] and payments & changed
        for version, payments in seen[flagged].items()
    )


async def _invoice_versions(
    p: Pipeline, company: Company, placement: mpb.Placement
) -> dict[str, set[str]]:
    """The invoice versions the placement's audit trail records, each with the payments it
    linked."""
    audit = await p.matching.ListAuditEvents(
        mpb.ListAuditEventsRequest(
            tenant_id=company.tenant, placement_id=placement.placement_id, page_size=1000
        )
    )
    versions: dict[str, set[str]] = {}
    for e in audit.events:
        if "invoice_state" in e.details:
            linked = json.loads(e.details.get("linked_txns", "[]"))
            payments = {t.split(":", 1)[1] for t in linked if t.startswith("payment:")}
            versions.setdefault(e.details.get("provider_version", ""), set()).update(payments)
    return versions


async def _payment_versions(
    p: Pipeline, company: Company, placement: mpb.Placement
) -> set[tuple[str, str]]:
    """The (payment, sync token) versions the placement's audit trail records: reads of a
    payment that applies to it, and of unapplied money that paused it."""
    audit = await p.matching.ListAuditEvents(
        mpb.ListAuditEventsRequest(
            tenant_id=company.tenant, placement_id=placement.placement_id, page_size=1000
        )
    )
    return {
        (e.details["payment_id"], e.details.get("provider_version", ""))
        for e in audit.events
        if e.details.get("payment_id")
        and ("payment_state" in e.details or "unapplied_minor_units" in e.details)
    }


async def _version(p: Pipeline, company: Company, payment_id: str) -> str:
    """The payment's sync token in QBO now; "" when it is deleted or voided."""
    payment = (await control(p, company.realm, "GET", f"payments/{payment_id}")).get("Payment")
    if payment is None or "Voided" in str(payment.get("PrivateNote", "")):
        return ""
    return str(payment.get("SyncToken", ""))


async def _placement(p: Pipeline, company: Company, index: int) -> mpb.Placement:
    reply = await p.matching.ListPlacements(
        mpb.ListPlacementsRequest(tenant_id=company.tenant, invoice_id=company.invoices[index])
    )
    return reply.placements[0]


# Cases the long run found; each must end where the matching rules say, both ways.
