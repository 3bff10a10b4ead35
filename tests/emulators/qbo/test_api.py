"""QBO API v3: query syntax and paging, read by id, companyinfo, envelopes and Faults."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.emulators.qbo.conftest import Emulator, Tokens

TODAY = date(2026, 1, 15)


@pytest.fixture
async def books(emulator: Emulator) -> tuple[str, Tokens]:
    realm = await emulator.company(
        customers=40, invoices=500, overdue_fraction=0.4, seed=7, today=TODAY.isoformat()
    )
    return realm, await emulator.connect(realm)


def _invoices(body: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = body["QueryResponse"].get("Invoice", [])
    return rows


async def test_overdue_query_get_and_post_agree(
    emulator: Emulator, books: tuple[str, Tokens]
) -> None:
    _, tokens = books
    text = (
        f"SELECT * FROM Invoice WHERE Balance > '0' AND DueDate < '{TODAY}' "
        "ORDERBY DueDate STARTPOSITION 1 MAXRESULTS 1000"
    )
    status, body = await emulator.query(tokens, text)
    assert status == 200
    rows = _invoices(body)
    assert len(rows) == 200  # exactly 40% of 500
    assert body["QueryResponse"]["startPosition"] == 1
    assert body["QueryResponse"]["maxResults"] == 200
    assert body["time"]
    assert all(r["Balance"] > 0 and r["DueDate"] < TODAY.isoformat() for r in rows)
    assert [r["DueDate"] for r in rows] == sorted(r["DueDate"] for r in rows)
    status, posted, headers = await emulator.api(
        tokens, "query", method="POST", data=text, params={"minorversion": "75"}
    )
    assert status == 200
    assert headers["intuit_tid"]
    assert _invoices(posted) == rows


async def test_paging_covers_every_row_once(emulator: Emulator, books: tuple[str, Tokens]) -> None:
    _, tokens = books
    seen: list[str] = []
    start = 1
    while True:
        status, body = await emulator.query(
            tokens, f"SELECT * FROM Invoice ORDERBY Id STARTPOSITION {start} MAXRESULTS 120"
        )
        assert status == 200
        page = _invoices(body)
        seen += [r["Id"] for r in page]
        if len(page) < 120:
            break
        start += 120
    assert len(seen) == len(set(seen)) == 500
    status, body = await emulator.query(tokens, "SELECT COUNT(*) FROM Invoice")
    assert body == {"QueryResponse": {"totalCount": 500}, "time": body["time"]}


async def test_default_page_is_100_and_past_the_end_is_empty(
    emulator: Emulator, books: tuple[str, Tokens]
) -> None:
    _, tokens = books
    _, body = await emulator.query(tokens, "select * from Invoice")
    assert len(_invoices(body)) == 100
    assert [int(r["Id"]) for r in _invoices(body)] == sorted(int(r["Id"]) for r in _invoices(body))
    _, body = await emulator.query(tokens, "SELECT * FROM Invoice STARTPOSITION 501")
    assert body["QueryResponse"] == {}


async def test_where_operators(emulator: Emulator, books: tuple[str, Tokens]) -> None:
    realm, tokens = books
    _, body = await emulator.query(tokens, "SELECT * FROM Invoice MAXRESULTS 3")
    first = _invoices(body)
    ids = [r["Id"] for r in first]
    _, body = await emulator.query(
        tokens, "SELECT * FROM Invoice WHERE Id IN ('{}', '{}', '{}')".format(*ids)
    )
    assert [r["Id"] for r in _invoices(body)] == ids
    customer = first[0]["CustomerRef"]["value"]
    _, body = await emulator.query(
        tokens, f"SELECT * FROM Invoice WHERE CustomerRef = '{customer}' MAXRESULTS 1000"
    )
    assert _invoices(body)
    assert {r["CustomerRef"]["value"] for r in _invoices(body)} == {customer}
    doc = first[0]["DocNumber"]
    _, body = await emulator.query(
        tokens, f"SELECT * FROM Invoice WHERE DocNumber LIKE '{doc[:3]}%'"
    )
    assert all(r["DocNumber"].startswith(doc[:3]) for r in _invoices(body))
    _, body = await emulator.query(
        tokens, "SELECT * FROM Invoice WHERE TxnDate >= '2025-12-01' AND TxnDate <= '2025-12-31'"
    )
    assert all("2025-12-01" <= r["TxnDate"] <= "2025-12-31" for r in _invoices(body))
    _, body = await emulator.query(
        tokens, "SELECT * FROM Customer WHERE Active = true ORDERBY MetaData.LastUpdatedTime DESC"
    )
    stamps = [r["MetaData"]["LastUpdatedTime"] for r in body["QueryResponse"]["Customer"]]
    assert stamps == sorted(stamps, reverse=True)
    # MetaData.LastUpdatedTime filters (either casing, as Intuit's own samples spell it).
    await emulator.control("PATCH", f"/companies/{realm}/customers/3", {"email": "new@example.org"})
    _, body = await emulator.query(
        tokens,
        f"SELECT * FROM Customer WHERE Metadata.LastUpdatedTime > '{TODAY - timedelta(days=1)}'",
    )
    assert [c["Id"] for c in body["QueryResponse"]["Customer"]] == ["3"]


@pytest.mark.parametrize(
    ("text", "code", "message", "detail"),
    [
        # Not the language: Intuit's 4000 "Error parsing query" (QueryParserError).
        (
            "SELECT * FROM Invoice WHERE Balance > '0' OR DueDate < '2026-01-01'",
            "4000",
            "Error parsing query",
            "QueryParserError",
        ),
        ("DELETE FROM Invoice", "4000", "Error parsing query", "QueryParserError"),
        ("SELECT FROM Invoice", "4000", "Error parsing query", "QueryParserError"),
        # The language, refused: 4001 "Invalid query" (QueryValidationError).
        ("SELECT * FROM Invoice MAXRESULTS 1001", "4001", "Invalid query", "too large"),
        ("SELECT * FROM Invoice STARTPOSITION 0", "4001", "Invalid query", "too small"),
        ("SELECT * FROM Invoice WHERE Bogus = '1'", "4001", "Invalid query", "not queryable"),
        (
            "SELECT * FROM invoice",
            "4001",
            "Invalid query",
            "QueryValidationError: Metadata not found for Entity: invoice",
        ),
        (
            "SELECT * FROM Nonsense WHERE Name = 'x'",
            "4001",
            "Invalid query",
            "QueryValidationError: Metadata not found for Entity: Nonsense",
        ),
        ("SELECT * FROM Invoice WHERE Balance > 'abc'", "4001", "Invalid query", "invalid value"),
    ],
)
async def test_invalid_queries_get_intuits_4000_or_4001(
    emulator: Emulator, books: tuple[str, Tokens], text: str, code: str, message: str, detail: str
) -> None:
    _, tokens = books
    status, body = await emulator.query(tokens, text)
    assert status == 400
    error = body["Fault"]["Error"][0]
    assert (error["code"], error["Message"]) == (code, message)
    assert detail in error["Detail"]
    assert body["Fault"]["type"] == "ValidationFault"


async def test_read_by_id_and_object_not_found(
    emulator: Emulator, books: tuple[str, Tokens]
) -> None:
    realm, tokens = books
    status, body, _ = await emulator.api(tokens, "customer/5", params={"minorversion": "75"})
    assert status == 200
    customer = body["Customer"]
    assert customer["Id"] == "5"
    assert customer["PrimaryEmailAddr"]["Address"].endswith(".example.org") or customer[
        "PrimaryEmailAddr"
    ]["Address"].endswith(".example.com")
    assert customer["BillAddr"]["City"]
    status, body, _ = await emulator.api(tokens, "invoice/99999")
    assert status == 400
    assert body["Fault"]["Error"][0]["code"] == "610"
    # A deleted invoice also reads as 610.
    _, page = await emulator.query(tokens, "SELECT * FROM Invoice MAXRESULTS 1")
    invoice_id = _invoices(page)[0]["Id"]
    await emulator.control("DELETE", f"/companies/{realm}/invoices/{invoice_id}")
    status, body, _ = await emulator.api(tokens, f"invoice/{invoice_id}")
    assert status == 400
    assert body["Fault"]["Error"][0]["code"] == "610"
    assert "deleted" in body["Fault"]["Error"][0]["Detail"]


async def test_company_info_and_preferences(emulator: Emulator, books: tuple[str, Tokens]) -> None:
    realm, tokens = books
    status, body, _ = await emulator.api(tokens, f"companyinfo/{realm}")
    assert status == 200
    assert body["CompanyInfo"]["CompanyName"] == "Demo Company"
    assert body["CompanyInfo"]["Country"] == "US"
    # The response time is in the company's zone, so its date is the company's today.
    assert body["time"].startswith(TODAY.isoformat())
    status, body, _ = await emulator.api(tokens, "preferences")
    assert body["Preferences"]["CurrencyPrefs"]["MultiCurrencyEnabled"] is False


async def test_money_is_exact_cents(emulator: Emulator, books: tuple[str, Tokens]) -> None:
    _, tokens = books
    _, body = await emulator.query(tokens, "SELECT * FROM Invoice MAXRESULTS 1000")
    for row in _invoices(body):
        for amount in (row["TotalAmt"], row["Balance"]):
            assert round(amount, 2) == amount
            assert len(repr(amount).split(".")[1]) <= 2


async def test_every_response_has_intuit_tid(emulator: Emulator) -> None:
    for path in ("/nope", "/v3/company/1/query", "/_emulator/companies"):
        async with emulator.http.get(f"{emulator.base}{path}") as resp:
            assert resp.headers.get("intuit_tid"), path


async def test_writes_through_the_api_are_refused(
    emulator: Emulator, books: tuple[str, Tokens]
) -> None:
    _, tokens = books
    status, body, _ = await emulator.api(
        tokens, "payment", method="POST", data="{}", content_type="application/json"
    )
    assert status == 400
    assert body["Fault"]["Error"][0]["Message"] == "Unsupported Operation"
