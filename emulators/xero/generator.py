"""A deterministic organisation: contacts, and invoices with spread due dates.

Everything derives from the seed and the organisation's today, so two runs with the same
inputs give the same books (ids included).
"""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from emulators.common.clock import start_of_day
from emulators.common.names import BUSINESS_SUFFIXES, BUSINESS_WORDS, FIRST_NAMES, LAST_NAMES
from emulators.xero.books import Contact, Invoice, Line, Organisation
from emulators.xero.config import OrganisationSpec


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def populate(org: Organisation, spec: OrganisationSpec) -> None:
    """Fill an empty organisation; no webhooks: the data predates any connection."""
    if spec.contacts < 0 or spec.invoices < 0:
        raise ValueError("contacts and invoices must be >= 0")
    if spec.invoices and not spec.contacts:
        raise ValueError("invoices need at least one contact")
    if not 0 <= spec.overdue_fraction <= 1:
        raise ValueError("overdue_fraction must be from 0 to 1")
    rng = random.Random(spec.seed)
    today = org.today()
    epoch = start_of_day(today - timedelta(days=400), org.tz)
    contacts: list[Contact] = []
    for n in range(1, spec.contacts + 1):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        if rng.random() < 0.35:
            name = f"{last} {rng.choice(BUSINESS_WORDS)} {rng.choice(BUSINESS_SUFFIXES)} ({n})"
            email = f"accounts{n}@{last.lower()}-{n}.example.com"
        else:
            name = f"{first} {last} ({n})"
            email = f"{first.lower()}.{last.lower()}{n}@example.org"
        contact = Contact(
            _uuid(rng),
            name,
            epoch + n * 60,
            first_name=first,
            last_name=last,
            email=email,
            phone=f"021 555 {rng.randint(1000, 9999)}",
            number=f"C{n:05d}",
        )
        contacts.append(contact)
        org.load_contact(contact)
    overdue = set(rng.sample(range(spec.invoices), round(spec.invoices * spec.overdue_fraction)))
    today_start = start_of_day(today, org.tz)
    for j in range(spec.invoices):
        contact = contacts[rng.randrange(len(contacts))]
        terms = rng.choice((7, 14, 20, 30))
        if j in overdue:
            due = today - timedelta(days=rng.randint(1, 180))
        else:
            due = today + timedelta(days=rng.randint(0, terms))
        day = due - timedelta(days=terms)
        lines = [
            Line(f"Services ({k + 1})", rng.randint(10, 900) * 100 + rng.choice((0, 50, 95)))
            for k in range(rng.choice((1, 1, 2, 3)))
        ]
        invoice = Invoice(
            _uuid(rng),
            f"INV-{j + 1:05d}",
            contact.id,
            lines,
            day,
            due,
            min(start_of_day(day, org.tz) + j % 3600, today_start),
            org.base_currency,
        )
        org.load_invoice(invoice)
