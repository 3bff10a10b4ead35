"""The placement preview: the tenant's overdue invoices and whether each would be placed.

Reads QBO only (through the PlatformCaller at the backfill priority), writes nothing and calls
nothing in the matcher. Candidates come ordered by due date, then id. The first page
walks every overdue invoice once to total them per currency; the totals, the company's
today and the position travel in the page token, so later pages cost one query each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from aicollect.errors import InvalidArgument
from aicollect.provider import Provider
from aicollect.rpc import paging
from services.integration.budget import Priority
from services.integration.providers.base import AccountingFacts, EntityReader, InvoiceFacts
from services.integration.sync.context import SyncDeps
from services.integration.sync.rules import Exclusion, PlacementRules, get_rules
from services.integration.sync.service import connected_realm


@dataclass(frozen=True)
class Candidate:
    invoice: InvoiceFacts
    days_past_due: int
    exclusion: Exclusion | None


@dataclass
class CurrencyTotal:
    candidates: int = 0
    placed: int = 0
    placed_balance: int = 0


@dataclass(frozen=True)
class PreviewPage:
    candidates: list[Candidate]
    next_page_token: str
    totals: dict[str, CurrencyTotal]
    company_date: date
    rules: PlacementRules


def _candidate(
    row: dict[str, Any], rules: PlacementRules, today: date, mapper: AccountingFacts
) -> Candidate:
    facts = mapper.invoice_facts(row)
    return Candidate(facts, facts.days_past_due(today), rules.exclusion(facts, today))


async def preview(
    deps: SyncDeps,
    tenant_id: str,
    rules_override: PlacementRules | None,
    page_size: int,
    page_token: str,
    provider: Provider = Provider.QBO,
) -> PreviewPage:
    size = paging.page_size(page_size)
    realm_id = await connected_realm(deps, tenant_id, provider)
    if rules_override is None:
        async with deps.sessions() as session:
            rules = (await get_rules(session, tenant_id)).rules
    else:
        rules = rules_override
    filters = {"tenant": tenant_id, "realm": realm_id, "rules": rules.to_json()}
    position = paging.decode_token(page_token, filters)
    reader = deps.reader(tenant_id, realm_id, Priority.BACKFILL)
    if position is None:
        return await _first_page(reader, deps.platform.facts, rules, size, filters)
    try:
        start = int(position["start"])
        today = date.fromisoformat(str(position["date"]))
        count = int(position["count"])
        totals = {
            code: CurrencyTotal(int(c), int(p), int(b))
            for code, (c, p, b) in dict(position["totals"]).items()
        }
    except (KeyError, TypeError, ValueError):
        raise InvalidArgument("page_token is not valid", field="page_token") from None
    rows = await _one_page(reader, today, start, size)
    candidates = [_candidate(r, rules, today, deps.platform.facts) for r in rows]
    end = start + len(rows)
    token = _token(end, today, count, totals, filters) if len(rows) == size and end <= count else ""
    return PreviewPage(candidates, token, totals, today, rules)


async def _one_page(reader: EntityReader, today: date, start: int, size: int) -> list[Any]:
    """One page of candidates from ``start`` (one query)."""
    pages = reader.overdue_by_due_date(today, start=start, page_size=size)
    try:
        async for page in pages:
            return page.rows
    finally:
        await pages.aclose()  # type: ignore[attr-defined]
    return []


def _token(
    start: int, today: date, count: int, totals: dict[str, CurrencyTotal], filters: dict[str, Any]
) -> str:
    return paging.encode_token(
        {
            "start": start,
            "date": today.isoformat(),
            "count": count,
            "totals": {k: [t.candidates, t.placed, t.placed_balance] for k, t in totals.items()},
        },
        filters,
    )


async def _first_page(
    reader: EntityReader,
    facts: AccountingFacts,
    rules: PlacementRules,
    size: int,
    filters: dict[str, Any],
) -> PreviewPage:
    text = await reader.company_time()
    today = facts.parse_time(text).date()
    totals: dict[str, CurrencyTotal] = {}
    first: list[Candidate] = []
    count = 0
    async for page in reader.overdue_by_due_date(today, page_size=reader.max_page):
        for row in page.rows:
            candidate = _candidate(row, rules, today, facts)
            count += 1
            total = totals.setdefault(candidate.invoice.currency, CurrencyTotal())
            total.candidates += 1
            if candidate.exclusion is None:
                total.placed += 1
                total.placed_balance += candidate.invoice.balance
            if len(first) < size:
                first.append(candidate)
    token = _token(size + 1, today, count, totals, filters) if count > size else ""
    return PreviewPage(first, token, totals, today, rules)
