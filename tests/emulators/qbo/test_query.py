"""The query parser and evaluator, without HTTP."""

from __future__ import annotations

from datetime import date

import pytest

from emulators.qbo import CompanySpec, EmulatorConfig, EmulatorState
from emulators.qbo.books import Company
from emulators.qbo.query import QueryCache, QueryError, execute, parse


@pytest.fixture
def company() -> Company:
    state = EmulatorState(EmulatorConfig(prerender=False))
    company = state.create_company(CompanySpec(customers=30, invoices=300, today=date(2026, 2, 1)))
    company.add_customer(display_name="O'Brien Hardware")
    return company


def _ids(company: Company, text: str) -> list[str]:
    result = execute(company, parse(text, company.tz), QueryCache())
    return [row.id for row in result.rows]


def test_python_quickbooks_spellings(company: Company) -> None:
    # all() writes "ORDER BY"; choose() writes a lower-case "in" with unquoted numbers.
    by_two_words = _ids(company, "SELECT * FROM Invoice ORDER BY DueDate DESC MAXRESULTS 50")
    by_one_word = _ids(company, "SELECT * FROM Invoice ORDERBY DueDate DESC MAXRESULTS 50")
    assert by_two_words == by_one_word
    assert _ids(company, "SELECT * FROM Invoice WHERE Id in (31, 33)") == ["31", "33"]
    escaped = r"SELECT * FROM Customer WHERE DisplayName = 'O\'Brien Hardware'"
    assert _ids(company, escaped) == ["31"]


def test_like_is_case_insensitive_and_anchored(company: Company) -> None:
    names = {
        company.customers[i].display_name
        for i in _ids(company, "SELECT * FROM Customer WHERE DisplayName LIKE '%hardware'")
    }
    assert names
    assert all(name.lower().endswith("hardware") for name in names)
    assert _ids(company, "SELECT * FROM Customer WHERE DisplayName LIKE 'hardware'") == []


def test_reference_ranges_compare_as_numbers(company: Company) -> None:
    ids = _ids(company, "SELECT * FROM Invoice WHERE CustomerRef > '9' MAXRESULTS 1000")
    assert ids
    assert all(int(company.invoices[i].customer_id) > 9 for i in ids)
    with pytest.raises(QueryError):
        parse("SELECT * FROM Invoice WHERE CustomerRef > 'abc'", company.tz)


def test_several_conditions_and_sort_keys(company: Company) -> None:
    text = (
        "SELECT * FROM Invoice WHERE Balance >= '100.00' AND TotalAmt <= '5000' "
        "AND DueDate > '2025-12-01' ORDERBY CustomerRef, DueDate DESC MAXRESULTS 1000"
    )
    rows = [company.invoices[i] for i in _ids(company, text)]
    assert rows
    assert all(
        r.balance >= 10_000 and r.total <= 500_000 and r.due_date > "2025-12-01" for r in rows
    )
    keys = [(int(r.customer_id), r.due_date) for r in rows]
    assert keys == sorted(keys, key=lambda k: (k[0], _neg(k[1])))


def _neg(day: str) -> int:
    return -date.fromisoformat(day).toordinal()


def test_count_ignores_paging(company: Company) -> None:
    result = execute(
        company, parse("SELECT COUNT(*) FROM Invoice MAXRESULTS 5", company.tz), QueryCache()
    )
    assert result.count == 300


def test_unknown_but_real_entities_are_empty(company: Company) -> None:
    assert _ids(company, "SELECT * FROM Item") == []
    with pytest.raises(QueryError):
        parse("SELECT * FROM Nonsense", company.tz)
