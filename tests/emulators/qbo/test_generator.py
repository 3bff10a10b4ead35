"""The deterministic company generator."""

from __future__ import annotations

import time
from collections import Counter
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from emulators.qbo import CompanySpec, EmulatorConfig, EmulatorState
from emulators.qbo.books import Company

TODAY = date(2026, 6, 30)


def _company(**spec: Any) -> Company:
    state = EmulatorState(EmulatorConfig(prerender=False))
    return state.create_company(CompanySpec(today=TODAY, **spec))


def _dump(company: Company) -> bytes:
    return b"\n".join(
        entity.json_bytes(company.tz, company)
        for table in company.tables()
        for entity in table.values()
    )


def test_same_seed_same_json_different_seed_different() -> None:
    first = _dump(_company(customers=50, invoices=400, seed=9, multicurrency=True))
    again = _dump(_company(customers=50, invoices=400, seed=9, multicurrency=True))
    other = _dump(_company(customers=50, invoices=400, seed=10, multicurrency=True))
    assert first == again
    assert first != other


@pytest.mark.parametrize("fraction", [0.0, 0.25, 1.0])
def test_overdue_fraction_is_exact(fraction: float) -> None:
    company = _company(customers=20, invoices=1000, overdue_fraction=fraction)
    today = company.today().isoformat()
    assert today == TODAY.isoformat()
    overdue = [i for i in company.invoices.values() if i.balance > 0 and i.due_date < today]
    assert len(overdue) == round(1000 * fraction)
    assert all(i.txn_date <= today for i in company.invoices.values())
    assert all(i.created <= company.now() for i in company.invoices.values())


def test_customers_have_contact_details_and_balances() -> None:
    company = _company(customers=200, invoices=600)
    names = [c.display_name for c in company.customers.values()]
    assert len(set(names)) == len(names)
    for customer in company.customers.values():
        assert "@" in customer.email
        assert customer.phone.startswith("(")
        assert customer.address is not None
        assert customer.address.postal_code
        owed = sum(i.balance for i in company.invoices.values() if i.customer_id == customer.id)
        assert customer.balance == owed


def test_multicurrency_fields() -> None:
    company = _company(customers=60, invoices=300, multicurrency=True)
    currencies = Counter(i.currency for i in company.invoices.values())
    assert set(currencies) == {"USD", "CAD", "EUR", "GBP"}
    for invoice in company.invoices.values():
        rendered = invoice.to_dict(company.tz, company)
        assert rendered["CurrencyRef"]["value"] == invoice.currency
        rate = Decimal(str(rendered["ExchangeRate"]))
        expected = (Decimal(invoice.balance) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        assert Decimal(str(rendered["HomeBalance"])) == expected / 100
        if invoice.currency == "USD":
            assert rendered["ExchangeRate"] == 1
    single = _company(customers=5, invoices=20)
    rendered = next(iter(single.invoices.values())).to_dict(single.tz, single)
    assert "ExchangeRate" not in rendered
    assert rendered["CurrencyRef"] == {"value": "USD", "name": "United States Dollar"}


def test_hundred_thousand_invoices_in_seconds() -> None:
    started = time.perf_counter()
    company = _company(customers=5000, invoices=100_000, seed=3)
    elapsed = time.perf_counter() - started
    assert len(company.invoices) == 100_000
    assert elapsed < 10, f"generating 100k invoices took {elapsed:.1f} s"


@pytest.mark.parametrize("zone_name", ["America/Los_Angeles", "Pacific/Auckland", "UTC"])
@pytest.mark.parametrize("day", [date(2026, 1, 15), date(2026, 6, 30), date(2026, 3, 8)])
@pytest.mark.parametrize("real_hour", [0.0, 7.5, 23.9])
def test_a_pinned_today_holds_whatever_the_hour_and_the_daylight_saving_time(
    zone_name: str, day: date, real_hour: float
) -> None:
    """The company's today is the pinned day at midday, at any hour of the real day and on
    either side of a change of UTC offset; a move to another zone keeps the local time."""
    from datetime import datetime
    from datetime import time as time_of_day
    from zoneinfo import ZoneInfo

    from emulators.common.clock import Clock, TenantClock

    class FixedClock(Clock):
        def time(self) -> float:  # a real instant on 2026-11-28, in winter in the north
            return datetime(2026, 11, 28, tzinfo=ZoneInfo("UTC")).timestamp() + real_hour * 3600

    tenant = TenantClock(FixedClock(), ZoneInfo(zone_name), today=day)
    assert tenant.today() == day
    local = datetime.fromtimestamp(tenant.now(), ZoneInfo(zone_name))
    assert local.time() == time_of_day(12, 0)
    tenant.move_to_zone(ZoneInfo("Asia/Tokyo"))
    moved = datetime.fromtimestamp(tenant.now(), ZoneInfo("Asia/Tokyo"))
    assert (moved.date(), moved.time()) == (day, time_of_day(12, 0))
