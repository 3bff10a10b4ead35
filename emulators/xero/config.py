"""Emulator settings: defaults are Xero's documented values; tests and benchmarks scale them.

Where Xero's behaviour is not documented (``UNCONFIRMED`` in our reference notes) a setting
chooses between the readings, so the integration can be tested under each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Final, Literal

# "decreasing frequency for up to 24 hours", then the webhook is disabled.
XERO_RETRY_SCHEDULE: Final = (10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0)
WEBHOOK_GIVE_UP_AFTER: Final = 24 * 3600.0
WEBHOOK_CATEGORIES: Final = ("INVOICE", "CONTACT", "CREDITNOTE")

ScopeStyle = Literal["any", "granular", "broad"]
SCOPE_STYLES: Final = ("any", "granular", "broad")
ModifiedSinceMode = Literal["accept", "reject", "ignore"]
MODIFIED_SINCE_MODES: Final = ("accept", "reject", "ignore")


@dataclass(slots=True)
class AppConfig:
    """An app in Xero's developer portal: one webhook URL and signing key for all its orgs."""

    client_id: str
    client_secret: str
    redirect_uris: list[str] = field(default_factory=list)
    webhook_url: str | None = None
    webhook_key: str = ""
    webhook_categories: tuple[str, ...] = WEBHOOK_CATEGORIES
    # "OK": the Intent to Receive already passed (as for a live app); "PENDING" until the
    # emulator runs it (``/_emulator/apps/{id}/intent-to-receive``).
    webhook_status: str = "OK"
    # Apps created on or after 2 Mar 2026 get granular scopes only; older ones broad ones
    # (and may mix during the migration): "any" accepts both.
    scope_style: ScopeStyle = "any"
    name: str = "ai-collect"


@dataclass(slots=True)
class OrganisationSpec:
    """An organisation to create, optionally filled by the deterministic generator."""

    tenant_id: str | None = None
    name: str = "Demo Company (NZ)"
    timezone: str = "NEWZEALANDSTANDARDTIME"  # Xero's Windows-style zone name
    base_currency: str = "NZD"
    country_code: str = "NZ"
    contacts: int = 0
    invoices: int = 0
    overdue_fraction: float = 0.3
    seed: int = 1
    today: date | None = None
    starter_tier: bool = False  # 1,000 calls a day instead of 5,000


@dataclass(slots=True)
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 8091
    public_base_url: str | None = None
    # OAuth lifetimes (seconds).
    access_token_ttl: int = 1800
    auth_code_ttl: int = 300
    refresh_grace: int = 1800  # a superseded refresh token still works this long
    refresh_idle_ttl: int = 60 * 86_400  # an unused refresh token expires after 60 days
    # Several organisations in one consent ("bulk connections"; tiering UNCONFIRMED).
    multi_org_consent: bool = True
    # UNCONFIRMED: does a refresh token still work once its user's last connection to the
    # app is gone (deleted by the app or disconnected in Xero)?
    refresh_without_connections: bool = True
    # UNCONFIRMED: the status of an API call for an organisation that is not (or no longer)
    # connected; a third-party guide reports 403.
    disconnected_tenant_status: int = 403
    # Per-organisation limits (None switches one off) and the app-wide minute limit.
    minute_limit: int | None = 60
    concurrent_limit: int | None = 5
    daily_limit: int | None = 5000
    starter_daily_limit: int | None = 1000
    app_minute_limit: int | None = 10_000
    # Listing.
    default_page_size: int = 100
    max_page_size: int = 1000
    # UNCONFIRMED: an If-Modified-Since that is not ``yyyy-mm-ddThh:mm:ss``: "accept" it
    # (any ISO 8601 or HTTP date), "reject" it (400) or "ignore" it (full list).
    if_modified_since_other: ModifiedSinceMode = "accept"
    # UNCONFIRMED: recording or deleting a payment, or allocating a credit, sends an
    # INVOICE UPDATE webhook.
    payment_webhooks: bool = True
    # Documented caveat: a DueDate edit on a part-paid invoice does not bump UpdatedDateUTC.
    due_date_bumps_part_paid: bool = False
    # Webhooks.
    webhook_batch_window: float = 0.0
    webhook_time_scale: float = 1.0
    webhook_timeout: float = 5.0
    webhook_max_events: int = 100
    retry_schedule: tuple[float, ...] = XERO_RETRY_SCHEDULE
    webhook_give_up_after: float = WEBHOOK_GIVE_UP_AFTER
    # UNCONFIRMED: events held while a webhook was disabled are replayed on re-enable.
    webhook_replay_on_reenable: bool = False
    seed: int = 0
    apps: list[AppConfig] = field(default_factory=list)
    organisations: list[OrganisationSpec] = field(default_factory=list)
