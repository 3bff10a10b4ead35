"""Everything the emulator knows, in memory, behind one object."""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from datetime import date
from typing import Any

from emulators.common.clock import Clock
from emulators.qbo.books import Company
from emulators.qbo.config import CompanySpec, EmulatorConfig
from emulators.qbo.faults import RealmLimiter, fault_box
from emulators.qbo.generator import GeneratorSpec, populate
from emulators.qbo.oauth import App, OAuthState
from emulators.qbo.query import QueryCache
from emulators.qbo.webhooks import Webhooks

FIRST_REALM_ID = 9341453050000001


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.oauth = OAuthState(config)
        self.faults = fault_box(config)
        self.limiter = RealmLimiter()
        self.webhooks = Webhooks(config, self.clock, self.oauth, self.faults)
        self.query_cache = QueryCache()
        self.companies: dict[str, Company] = {}
        self.api_requests: Counter[str] = Counter()  # realm -> requests that reached a handler
        # (realm, entity) -> queries of that entity (``SELECT ... FROM Customer``: "Customer")
        self.api_queries: Counter[tuple[str, str]] = Counter()
        self.throttled: Counter[str] = Counter()  # realm -> 429s sent
        self._next_realm = FIRST_REALM_ID
        self._to_prerender: deque[Company] = deque()
        self._prerender_wakeup = asyncio.Event()
        self._load_config()

    def _load_config(self) -> None:
        for app in self.config.apps:
            self.oauth.register(App.from_config(app))
        for spec in self.config.companies:
            self.create_company(spec)

    def reset(self) -> None:
        """Back to the state the emulator started with (config apps and companies)."""
        self.clock.reset()
        self.oauth = OAuthState(self.config)
        self.webhooks.intuit.oauth = self.oauth
        self.webhooks.reset()
        self.faults.reset()
        self.limiter.reset()
        self.query_cache.clear()
        self.companies.clear()
        self.api_requests.clear()
        self.api_queries.clear()
        self.throttled.clear()
        self._next_realm = FIRST_REALM_ID
        self._to_prerender.clear()
        self._load_config()

    def new_realm_id(self) -> str:
        while str(self._next_realm) in self.companies:
            self._next_realm += 1
        realm = str(self._next_realm)
        self._next_realm += 1
        return realm

    def create_company(self, spec: CompanySpec) -> Company:
        realm_id = spec.realm_id or self.new_realm_id()
        if realm_id in self.companies:
            raise ValueError(f"realm {realm_id} exists")
        company = Company(
            realm_id,
            spec.name,
            self.clock,
            country=spec.country,
            timezone=spec.timezone,
            home_currency=spec.home_currency,
            multicurrency=spec.multicurrency,
            today=spec.today,
        )
        if spec.customers or spec.invoices:
            populate(
                company,
                GeneratorSpec(
                    customers=spec.customers,
                    invoices=spec.invoices,
                    overdue_fraction=spec.overdue_fraction,
                    seed=spec.seed,
                    multicurrency=spec.multicurrency,
                    currencies=spec.currencies,
                    today=spec.today,
                ),
            )
        company.on_change = self.webhooks.on_change
        self.companies[realm_id] = company
        if self.config.prerender and (spec.customers or spec.invoices):
            self._to_prerender.append(company)
            self._prerender_wakeup.set()
        return company

    async def prerender(self) -> None:
        """Background task: render generated entities' JSON, a slice at a time."""
        while True:
            await self._prerender_wakeup.wait()
            self._prerender_wakeup.clear()
            while self._to_prerender:
                company = self._to_prerender.popleft()
                for table in company.tables():
                    entities = list(table.values())
                    for start in range(0, len(entities), 250):
                        for entity in entities[start : start + 250]:
                            entity.json_bytes(company.tz, company)
                        await asyncio.sleep(0)
                company.prerendered = True

    def prerender_pending(self) -> bool:
        return bool(self._to_prerender) or any(
            not c.prerendered for c in self.companies.values() if c.invoices or c.customers
        )

    def company_today(self, realm_id: str) -> date:
        return self.companies[realm_id].today()

    def stats(self) -> dict[str, Any]:
        return {
            **self.oauth.stats(),
            "api_requests": dict(self.api_requests),
            "throttled": dict(self.throttled),
            "faults_injected": dict(self.faults.injected),
            "clock_offset_seconds": self.clock.offset,
        }
