"""Everything the Xero emulator knows, in memory, behind one object."""

from __future__ import annotations

import uuid
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

from emulators.common.clock import Clock
from emulators.xero.books import Organisation
from emulators.xero.config import EmulatorConfig, OrganisationSpec
from emulators.xero.faults import fault_box
from emulators.xero.generator import populate
from emulators.xero.limits import Limiter, Limits
from emulators.xero.oauth import App, OAuthState
from emulators.xero.webhooks import XeroWebhooks

API_LOG_SIZE = 10_000


def path_kind(resource: str, single: bool, query: Mapping[str, str]) -> str:
    """How a request is counted: ``Contacts/{id}`` for a single read, ``Contacts?IDs`` for
    a list by ids, ``Contacts?page`` for a page, ``Contacts`` for an unpaged list."""
    if single:
        return f"{resource}/{{id}}"
    names = {key.lower() for key in query}
    if "ids" in names:
        return f"{resource}?IDs"
    return f"{resource}?page" if "page" in names else resource


class EmulatorState:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.clock = Clock()
        self.oauth = OAuthState(config)
        self.faults = fault_box(config)
        self.limiter = Limiter()
        self.webhooks = XeroWebhooks(config, self.clock, self.oauth, self.faults)
        self.organisations: dict[str, Organisation] = {}
        self.api_requests: Counter[str] = Counter()  # tenant -> requests that reached a handler
        # (tenant, path kind such as "Contacts?IDs", "Contacts?page", "Invoices/{id}") -> count
        self.api_paths: Counter[tuple[str, str]] = Counter()
        # The latest requests that reached a handler: (tenant, resource, query), for tests.
        self.api_log: deque[tuple[str, str, dict[str, str]]] = deque(maxlen=API_LOG_SIZE)
        self.throttled: Counter[str] = Counter()  # limit problem -> 429s sent
        self._load_config()

    def _load_config(self) -> None:
        for app in self.config.apps:
            self.oauth.register(App.from_config(app))
        for spec in self.config.organisations:
            self.create_organisation(spec)

    def reset(self) -> None:
        """Back to the state the emulator started with (config apps and organisations)."""
        self.clock.reset()
        self.oauth = OAuthState(self.config)
        self.webhooks.xero.oauth = self.oauth
        self.webhooks.reset()
        self.faults.reset()
        self.limiter.reset()
        self.organisations.clear()
        self.api_requests.clear()
        self.api_paths.clear()
        self.api_log.clear()
        self.throttled.clear()
        self._load_config()

    def create_organisation(self, spec: OrganisationSpec) -> Organisation:
        tenant_id = spec.tenant_id or str(uuid.uuid4())
        if tenant_id in self.organisations:
            raise ValueError(f"organisation {tenant_id} exists")
        org = Organisation(
            tenant_id,
            spec.name,
            self.clock,
            timezone=spec.timezone,
            base_currency=spec.base_currency,
            country_code=spec.country_code,
            today=spec.today,
            starter_tier=spec.starter_tier,
        )
        self.configure(org)
        if spec.contacts or spec.invoices:
            populate(org, spec)
        org.on_change = self.webhooks.on_change
        self.organisations[tenant_id] = org
        return org

    def configure(self, org: Organisation) -> None:
        """Carry the UNCONFIRMED-behaviour settings onto an organisation."""
        org.payment_webhooks = self.config.payment_webhooks
        org.due_date_bumps_part_paid = self.config.due_date_bumps_part_paid

    def limits(self, org: Organisation | None) -> Limits:
        faults = self.faults.faults
        daily = faults.daily_limit
        if org is not None and org.starter_tier:
            daily = faults.starter_daily_limit
        return Limits(faults.minute_limit, faults.concurrent_limit, daily, faults.app_minute_limit)

    def record(self, tenant_id: str, resource: str, single: bool, query: Mapping[str, str]) -> None:
        """Counts an API request that reached a handler."""
        self.api_requests[tenant_id] += 1
        self.api_paths[(tenant_id, path_kind(resource, single, query))] += 1
        self.api_log.append((tenant_id, resource, dict(query)))

    def stats(self) -> dict[str, Any]:
        by_path: dict[str, dict[str, int]] = {}
        for (tenant, kind), count in sorted(self.api_paths.items()):
            by_path.setdefault(tenant, {})[kind] = count
        return {
            **self.oauth.stats(),
            "api_requests": dict(self.api_requests),
            "api_requests_by_path": by_path,
            "throttled": dict(self.throttled),
            "faults_injected": dict(self.faults.injected),
            "clock_offset_seconds": self.clock.offset,
        }
