"""Xero's request limits and the injected faults."""

from __future__ import annotations

import asyncio

from tests.emulators.xero.conftest import Emulator


async def test_sixty_a_minute_then_429_with_retry_after(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    remaining = []
    for _ in range(60):
        status, _, headers = await emulator.api(tokens, tenant, "Organisation")
        assert status == 200
        remaining.append(int(headers["X-MinLimit-Remaining"]))
    assert remaining[0] == 59
    assert remaining[-1] == 0
    assert headers["X-DayLimit-Remaining"] == "4940"
    status, _, headers = await emulator.api(tokens, tenant, "Organisation")
    assert status == 429
    assert headers["X-Rate-Limit-Problem"] == "minute"
    assert 1 <= int(headers["Retry-After"]) <= 60
    # A refused call counts against nothing; the window closes a minute after it opened.
    await emulator.advance(int(headers["Retry-After"]))
    status, _, headers = await emulator.api(tokens, tenant, "Organisation")
    assert status == 200
    assert headers["X-MinLimit-Remaining"] == "59"
    assert headers["X-DayLimit-Remaining"] == "4939"


async def test_the_daily_limit_and_the_starter_tier(emulator: Emulator) -> None:
    starter = await emulator.organisation(starter_tier=True)
    core = await emulator.organisation()
    tokens = await emulator.connect([starter, core])
    _, _, headers = await emulator.api(tokens, starter, "Organisation")
    assert headers["X-DayLimit-Remaining"] == "999"
    _, _, headers = await emulator.api(tokens, core, "Organisation")
    assert headers["X-DayLimit-Remaining"] == "4999"
    await emulator.control("PUT", "/faults", {"starter_daily_limit": 3, "minute_limit": None})
    for _ in range(2):
        assert (await emulator.api(tokens, starter, "Organisation"))[0] == 200
    status, _, headers = await emulator.api(tokens, starter, "Organisation")
    assert status == 429
    assert headers["X-Rate-Limit-Problem"] == "day"
    assert int(headers["Retry-After"]) > 80_000
    # The other organisation has its own budget.
    assert (await emulator.api(tokens, core, "Organisation"))[0] == 200


async def test_five_in_flight_per_organisation(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    await emulator.control("PUT", "/faults", {"latency_ms": 300})
    results = await asyncio.gather(
        *(emulator.api(tokens, tenant, "Organisation") for _ in range(6))
    )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [200] * 5 + [429]
    refused = next(headers for status, _, headers in results if status == 429)
    assert refused["X-Rate-Limit-Problem"] == "concurrent"
    assert "Retry-After" not in refused


async def test_the_app_wide_minute_limit_spans_organisations(emulator: Emulator) -> None:
    first = await emulator.organisation()
    second = await emulator.organisation()
    tokens = await emulator.connect([first, second])
    await emulator.control("PUT", "/faults", {"app_minute_limit": 3})
    assert (await emulator.api(tokens, first, "Organisation"))[0] == 200
    assert (await emulator.api(tokens, second, "Organisation"))[0] == 200
    _, _, headers = await emulator.get(tokens, "/connections")
    assert headers["X-AppMinLimit-Remaining"] == "0"
    status, _, headers = await emulator.api(tokens, second, "Organisation")
    assert status == 429
    assert headers["X-Rate-Limit-Problem"] == "appminute"


async def test_injected_errors_and_forced_throttling(emulator: Emulator) -> None:
    tenant = await emulator.organisation()
    tokens = await emulator.connect([tenant])
    await emulator.control("PUT", "/faults", {"throttle_count": 2, "retry_after": 7})
    for _ in range(2):
        status, _, headers = await emulator.api(tokens, tenant, "Invoices")
        assert status == 429
        assert headers["Retry-After"] == "7"
    assert (await emulator.api(tokens, tenant, "Invoices"))[0] == 200
    await emulator.control("PUT", "/faults", {"error_rate": 1.0, "error_status": 503})
    status, _, _ = await emulator.api(tokens, tenant, "Invoices")
    assert status == 503
    faults = await emulator.control("GET", "/faults")
    assert faults["injected"] == {"throttle": 2, "error": 1}
    await emulator.control("PUT", "/faults", {"scope": ["api", "token"]})
    status, _ = await emulator.refresh(tokens.refresh_token)
    assert status == 503
    await emulator.control("DELETE", "/faults")
    assert (await emulator.api(tokens, tenant, "Invoices"))[0] == 200
    bad = await emulator.control("PUT", "/faults", {"error_rate": 2}, expect=400)
    assert "error_rate" in bad["error"]
