"""Emulator settings: defaults are Intuit's, tests and benchmarks scale them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Final, Literal

WebhookFormat = Literal["cloudevents", "legacy"]
WEBHOOK_FORMATS: Final = ("cloudevents", "legacy")

# Intuit's webhook retry intervals: 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h, then 6 h.
INTUIT_RETRY_SCHEDULE: Final = (10.0, 20.0, 30.0, 300.0, 1200.0, 7200.0, 14400.0, 21600.0)
ACCOUNTING_SCOPE: Final = "com.intuit.quickbooks.accounting"
PAYMENT_SCOPE: Final = "com.intuit.quickbooks.payment"


@dataclass(slots=True)
class AppConfig:
    """An app registered in Intuit's developer portal."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    verifier_token: str = ""
    webhook_format: WebhookFormat = "cloudevents"
    name: str = "ai-collect"


@dataclass(slots=True)
class CompanySpec:
    """A company to create, optionally filled by the deterministic generator."""

    realm_id: str | None = None
    name: str = "Demo Company"
    customers: int = 0
    invoices: int = 0
    overdue_fraction: float = 0.3
    seed: int = 1
    multicurrency: bool = False
    currencies: tuple[str, ...] = ("USD", "CAD", "EUR", "GBP")
    home_currency: str = "USD"
    country: str = "US"
    timezone: str = "America/Los_Angeles"
    today: date | None = None


@dataclass(slots=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8090
    # Where clients reach the emulator; derived from each request's Host header when unset.
    public_base_url: str | None = None
    # OAuth lifetimes (seconds).
    access_token_ttl: int = 3600
    auth_code_ttl: int = 600
    refresh_token_ttl: int = 8_726_400  # the rolling ~101 days Intuit reports
    refresh_token_hard_ttl: int = 1826 * 86_400  # the 5-year maximum
    # Per-realm limits; None switches a limit off.
    requests_per_minute: int | None = 500
    max_concurrent: int | None = 10
    # Query and CDC.
    query_max_results: int = 1000
    cdc_max_objects: int = 1000
    cdc_lookback_days: int = 30
    # Webhooks.
    webhook_batch_window: float = 0.0  # seconds to collect events before a POST; 0 = at once
    webhook_time_scale: float = 1.0  # multiplies INTUIT_RETRY_SCHEDULE
    webhook_timeout: float = 3.0  # an answer later than this counts as a failure
    webhook_max_events: int = 100
    retry_schedule: tuple[float, ...] = INTUIT_RETRY_SCHEDULE
    seed: int = 0  # fault dice, event ids
    # Render generated entities' JSON in the background after a company is generated, so
    # the first pass over a large company is as fast as later ones.
    prerender: bool = True
    apps: list[AppConfig] = field(default_factory=list)
    companies: list[CompanySpec] = field(default_factory=list)
