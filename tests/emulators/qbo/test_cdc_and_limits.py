"""Change data capture, per-realm limits and injected faults."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from emulators.qbo import EmulatorConfig
from tests.emulators.qbo.conftest import Emulator, Tokens, make_config


async def _cdc(emulator: Emulator, tokens: Tokens, entities: str, since: str) -> tuple[int, Any]:
    status, body, _ = await emulator.api(
        tokens, "cdc", params={"entities": entities, "changedSince": since, "minorversion": "75"}
    )
    return status, body


def _groups(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for group in body["CDCResponse"][0]["QueryResponse"]:
        for key, value in group.items():
            if isinstance(value, list):
                out[key] = value
    return out


async def test_cdc_reports_changes_and_deletions(emulator: Emulator) -> None:
    realm = await emulator.company(customers=5, invoices=20, seed=2)
    tokens = await emulator.connect(realm)
    _, body = await emulator.query(tokens, "SELECT * FROM Invoice MAXRESULTS 2")
    first, second = (row["Id"] for row in body["QueryResponse"]["Invoice"])
    _, info, _ = await emulator.api(tokens, f"companyinfo/{realm}")
    since = info["time"]
    status, empty = await _cdc(emulator, tokens, "Invoice,Payment", since)
    assert status == 200
    assert empty["CDCResponse"] == [{"QueryResponse": [{}]}]
    paid = await emulator.control(
        "POST", f"/companies/{realm}/payments", {"lines": [{"invoice_id": first, "amount": "1.00"}]}
    )
    await emulator.control("DELETE", f"/companies/{realm}/invoices/{second}")
    status, body = await _cdc(emulator, tokens, "invoice,payment,customer", since)
    assert status == 200
    groups = _groups(body)
    assert [p["Id"] for p in groups["Payment"]] == [paid["Payment"]["Id"]]
    by_id = {inv["Id"]: inv for inv in groups["Invoice"]}
    assert by_id[first]["Balance"] == by_id[first]["TotalAmt"] - 1
    assert by_id[second] == {
        "domain": "QBO",
        "status": "Deleted",
        "Id": second,
        "MetaData": {"LastUpdatedTime": by_id[second]["MetaData"]["LastUpdatedTime"]},
    }
    assert "Customer" not in groups
    assert body["time"] >= since


async def test_cdc_caps_the_response_at_1000_objects(emulator: Emulator) -> None:
    realm = await emulator.company(customers=1, invoices=0)
    tokens = await emulator.connect(realm)
    _, info, _ = await emulator.api(tokens, f"companyinfo/{realm}")
    company = emulator.state.companies[realm]
    for _ in range(1200):
        company.add_customer(display_name=f"Customer {len(company.customers) + 1}")
    status, body = await _cdc(emulator, tokens, "Customer", info["time"])
    assert status == 200
    assert len(_groups(body)["Customer"]) == 1000


async def test_cdc_refuses_more_than_30_days(emulator: Emulator) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    status, body = await _cdc(emulator, tokens, "Invoice", "2020-01-01T00:00:00-08:00")
    assert status == 400
    assert body["Fault"]["Error"][0]["code"] == "4001"
    assert "30 days" in body["Fault"]["Error"][0]["Detail"]
    status, _ = await _cdc(emulator, tokens, "Invoice", "")
    assert status == 400


async def test_forced_429_has_the_3001_fault(emulator: Emulator) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    await emulator.control("PUT", "/faults", {"throttle_count": 1})
    status, body, headers = await emulator.api(
        tokens, "query", params={"query": "SELECT * FROM Invoice"}
    )
    assert status == 429
    assert headers["intuit_tid"]
    error = body["Fault"]["Error"][0]
    assert error["code"] == "3001"
    assert error["Message"] == "message=ThrottleExceeded; errorCode=003001; statusCode=429"
    assert body["Fault"]["type"] == "SERVICE"
    status, _, _ = await emulator.api(tokens, "query", params={"query": "SELECT * FROM Invoice"})
    assert status == 200  # only the one forced
    faults = await emulator.control("GET", "/faults")
    assert faults["injected"] == {"throttle": 1}


async def test_requests_per_minute_limit_rolls(emulator: Emulator) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    await emulator.control("PUT", "/faults", {"requests_per_minute": 5})
    statuses = [(await emulator.api(tokens, f"companyinfo/{realm}"))[0] for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    await emulator.control("POST", "/clock", {"advance_seconds": 61})
    assert (await emulator.api(tokens, f"companyinfo/{realm}"))[0] == 200


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return make_config(max_concurrent=3)


async def test_concurrency_limit(emulator: Emulator) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)
    await emulator.control("PUT", "/faults", {"latency_ms": 150})
    results = await asyncio.gather(
        *(emulator.api(tokens, f"companyinfo/{realm}") for _ in range(5))
    )
    assert sorted(r[0] for r in results) == [200, 200, 200, 429, 429]
    # Limits can be switched off for benchmarks.
    await emulator.control("PUT", "/faults", {"max_concurrent": None, "latency_ms": 50})
    results = await asyncio.gather(
        *(emulator.api(tokens, f"companyinfo/{realm}") for _ in range(5))
    )
    assert [r[0] for r in results] == [200] * 5


async def test_error_rate_is_seeded_and_scoped(emulator: Emulator) -> None:
    realm = await emulator.company()
    tokens = await emulator.connect(realm)

    async def run() -> list[int]:
        await emulator.control(
            "PUT", "/faults", {"seed": 42, "error_rate": 0.5, "error_status": 503}
        )
        return [(await emulator.api(tokens, f"companyinfo/{realm}"))[0] for _ in range(20)]

    first, second = await run(), await run()
    assert first == second
    assert set(first) == {200, 503}
    await emulator.control("DELETE", "/faults")
    assert [(await emulator.api(tokens, f"companyinfo/{realm}"))[0] for _ in range(5)] == [200] * 5
    # Token endpoint faults only when scoped in.
    await emulator.control("PUT", "/faults", {"error_rate": 1.0, "scope": ["token"]})
    status, body = await emulator.token(
        {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
    )
    assert (status, body["error"]) == (500, "server_error")
    assert (await emulator.api(tokens, f"companyinfo/{realm}"))[0] == 200


async def test_bad_fault_settings_are_refused(emulator: Emulator) -> None:
    for bad in ({"error_rate": 2}, {"nope": 1}, {"max_concurrent": 0}, {"scope": ["x"]}):
        await emulator.control("PUT", "/faults", bad, expect=400)
