"""A deterministic company: customers with contact details, invoices with spread due dates.

Everything, timestamps included, derives from the seed and the company's ``today``, so two
runs with the same inputs render byte-identical JSON.  100,000 invoices take a second or two.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Final

from emulators.common.clock import start_of_day
from emulators.common.names import BUSINESS_SUFFIXES, BUSINESS_WORDS, FIRST_NAMES, LAST_NAMES
from emulators.qbo.books import Company
from emulators.qbo.model import Address, Customer, Invoice, SalesLine

STREETS: Final = (
    "Oak", "Maple", "Cedar", "Pine", "Elm", "Lakeview", "Hillcrest", "Sunset", "Park",
    "Washington", "Lincoln", "Jackson", "Highland", "Meadow", "River", "Church",
)  # fmt: skip
STREET_KINDS: Final = ("St.", "Ave.", "Rd.", "Blvd.", "Ln.", "Dr.", "Way", "Ct.")
CITIES: Final = (
    ("Half Moon Bay", "CA", "940"), ("Middlefield", "CA", "943"), ("Portland", "OR", "972"),
    ("Boise", "ID", "837"), ("Austin", "TX", "787"), ("Denver", "CO", "802"),
    ("Madison", "WI", "537"), ("Columbus", "OH", "432"), ("Raleigh", "NC", "276"),
    ("Tampa", "FL", "336"), ("Albany", "NY", "122"), ("Burlington", "VT", "054"),
)  # fmt: skip
AREA_CODES: Final = ("415", "503", "208", "512", "303", "608", "614", "919", "813", "518")
ITEMS: Final = (
    ("1", "Services"), ("2", "Hours"), ("3", "Design"), ("4", "Installation"),
    ("5", "Rock Fountain"), ("6", "Maintenance"), ("7", "Materials"), ("8", "Consulting"),
)  # fmt: skip
TERMS: Final = ((15, "2"), (30, "3"), (45, "4"), (60, "5"))  # days, SalesTermRef id
# Home-currency units per unit, in millionths, for a USD home currency.
BASE_RATES: Final = {"USD": 1_000_000, "CAD": 730_000, "EUR": 1_080_000, "GBP": 1_270_000,
                     "AUD": 660_000, "MXN": 58_000}  # fmt: skip


@dataclass(frozen=True, slots=True)
class GeneratorSpec:
    customers: int
    invoices: int
    overdue_fraction: float = 0.3
    seed: int = 1
    multicurrency: bool = False
    currencies: tuple[str, ...] = ("USD", "CAD", "EUR", "GBP")
    today: date | None = None


def validate(spec: GeneratorSpec) -> None:
    if spec.customers < 0 or spec.invoices < 0:
        raise ValueError("customers and invoices must be >= 0")
    if spec.invoices and not spec.customers:
        raise ValueError("invoices need at least one customer")
    if not 0 <= spec.overdue_fraction <= 1:
        raise ValueError("overdue_fraction must be from 0 to 1")
    unknown = [c for c in spec.currencies if c not in BASE_RATES]
    if unknown:
        raise ValueError(f"unsupported currencies: {unknown}; use {sorted(BASE_RATES)}")


def populate(company: Company, spec: GeneratorSpec) -> None:
    """Fill an empty ``company``; no webhooks: the data predates any connection."""
    validate(spec)
    if company.customers or company.invoices:
        raise ValueError("the generator fills empty companies only")
    rng = random.Random(spec.seed)
    today = spec.today or company.today()
    tz = company.tz
    today_start = start_of_day(today, tz)
    epoch = start_of_day(today - timedelta(days=400), tz)
    currencies = spec.currencies if spec.multicurrency else (company.home_currency,)

    customers: list[Customer] = []
    names: set[str] = set()
    for n in range(1, spec.customers + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        is_business = rng.random() < 0.35
        if is_business:
            company_name = f"{last} {rng.choice(BUSINESS_WORDS)} {rng.choice(BUSINESS_SUFFIXES)}"
            display = company_name
            email = f"billing{n}@{last.lower()}-{n}.example.com"
        else:
            company_name = ""
            display = f"{first} {last}"
            email = f"{first.lower()}.{last.lower()}{n}@example.org"
        if display in names:
            display = f"{display} ({n})"
        names.add(display)
        city, region, zip_prefix = rng.choice(CITIES)
        address = Address(
            line1=f"{rng.randint(1, 9999)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}",
            city=city,
            region=region,
            postal_code=f"{zip_prefix}{rng.randint(0, 99):02d}",
            id=str(n),
        )
        currency = (
            currencies[0] if len(currencies) == 1 or rng.random() < 0.6 else rng.choice(currencies)
        )
        customer = Customer(
            str(n),
            epoch + n * 60,
            display_name=display,
            given_name=first,
            family_name=last,
            company_name=company_name,
            email=email,
            phone=f"({rng.choice(AREA_CODES)}) 555-{rng.randint(100, 199):04d}",
            address=address,
            currency=currency,
        )
        customers.append(customer)
        company.load_customer(customer)

    overdue_count = round(spec.invoices * spec.overdue_fraction)
    overdue = set(rng.sample(range(spec.invoices), overdue_count))
    # Transaction ids follow the customer ids, so an invoice id never looks like a customer's.
    first_id = spec.customers + 1
    home = company.home_currency
    for j in range(spec.invoices):
        customer = customers[rng.randrange(len(customers))]
        terms_days, terms_id = rng.choice(TERMS)
        if j in overdue:
            due = today - timedelta(days=rng.randint(1, 180))
        else:
            due = today + timedelta(days=rng.randint(0, terms_days))
        txn = due - timedelta(days=terms_days)
        lines = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            item_id, item_name = rng.choice(ITEMS)
            qty = rng.randint(1, 5)
            unit = rng.randint(10, 500) * 100 + rng.choice((0, 0, 25, 50, 75, 99))
            lines.append(SalesLine(qty * unit, f"{item_name} ({qty} x)", item_name, item_id, qty))
        rate: Decimal | None = None
        if company.is_multicurrency:
            base = BASE_RATES[customer.currency]
            micro = base if customer.currency == home else base * rng.randint(980, 1020) // 1000
            rate = Decimal(micro) / 1_000_000
        created = min(start_of_day(txn, tz) + j % 3600, today_start)
        invoice = Invoice(
            str(first_id + j),
            created,
            customer_id=customer.id,
            doc_number=str(1001 + j),
            txn_date=txn.isoformat(),
            due_date=due.isoformat(),
            lines=lines,
            currency=customer.currency,
            exchange_rate=rate,
            bill_email=customer.email,
            terms=terms_id,
        )
        company.load_invoice(invoice)
    company.refresh_all_customer_balances()
