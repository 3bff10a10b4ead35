"""Configuration from the environment.

Every variable is listed in the README with its default. Secrets have no defaults in code:
each process names the secrets it needs (``require``), and a missing one stops the process
with a message naming it. ``aicollect run`` generates local secrets once and keeps them in
``<data dir>/local.env`` so a local stack needs nothing configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from aicollect import logs

INTUIT_DISCOVERY_URL = "https://developer.intuit.com/.well-known/openid_configuration/"
INTUIT_API_BASE_URL = "https://quickbooks.api.intuit.com"
XERO_AUTHORIZE_URL = "https://login.xero.com/identity/connect/authorize"
XERO_TOKEN_URL = "https://identity.xero.com/connect/token"  # noqa: S105 (a URL)
XERO_REVOCATION_URL = "https://identity.xero.com/connect/revocation"
XERO_API_BASE_URL = "https://api.xero.com"


class MissingSettingError(RuntimeError):
    """A required setting (usually a secret) is not configured."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(names)
        super().__init__(
            "missing required environment variable(s): "
            + ", ".join(self.names)
            + " (see README, section 'Environment')"
        )


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """All settings of the three processes, the CLI and the local stack."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True)

    env: Literal["local", "production"] = Field("local", validation_alias=_env("AICOLLECT_ENV"))
    """``local`` (embedded PostgreSQL, emulator) or ``production``."""

    database_url: str | None = Field(None, validation_alias=_env("AICOLLECT_DATABASE_URL"))
    """``postgresql+asyncpg://...``; unset means ``aicollect run`` starts an embedded server."""

    data_dir: Path = Field(Path(".data"), validation_alias=_env("AICOLLECT_DATA_DIR"))
    """Where the embedded PostgreSQL and generated local secrets live."""

    internal_token: SecretStr | None = Field(
        None, validation_alias=_env("AICOLLECT_INTERNAL_TOKEN")
    )
    """Bearer token every internal gRPC call carries."""

    token_keys: SecretStr | None = Field(None, validation_alias=_env("AICOLLECT_TOKEN_KEYS"))
    """Token encryption keys, newest first: ``kid:base64key,kid:base64key``."""

    jwt_secret: SecretStr | None = Field(None, validation_alias=_env("AICOLLECT_JWT_SECRET"))
    """HS256 secret of the dashboard's bearer JWTs (gateway)."""

    jwt_audience: str | None = Field(None, validation_alias=_env("AICOLLECT_JWT_AUDIENCE"))
    """When set, a dashboard JWT must carry this ``aud``; unset means ``aud`` is not checked."""

    jwt_issuer: str | None = Field(None, validation_alias=_env("AICOLLECT_JWT_ISSUER"))
    """When set, a dashboard JWT must carry this ``iss``; unset means ``iss`` is not checked."""

    dashboard_url: str = Field(
        "http://localhost:3000/settings/integrations/qbo",
        validation_alias=_env("AICOLLECT_DASHBOARD_URL"),
    )
    """Where the OAuth callback redirects the creditor's browser."""

    integration_addr: str = Field(
        "127.0.0.1:50051", validation_alias=_env("AICOLLECT_INTEGRATION_ADDR")
    )
    matcher_addr: str = Field("127.0.0.1:50052", validation_alias=_env("AICOLLECT_MATCHER_ADDR"))
    gateway_host: str = Field("127.0.0.1", validation_alias=_env("AICOLLECT_GATEWAY_HOST"))
    gateway_port: int = Field(8080, validation_alias=_env("AICOLLECT_GATEWAY_PORT"))
    emulator_port: int = Field(8090, validation_alias=_env("AICOLLECT_EMULATOR_PORT"))
    xero_emulator_port: int = Field(8091, validation_alias=_env("AICOLLECT_XERO_EMULATOR_PORT"))

    oauth_state_ttl_seconds: int = Field(
        600, validation_alias=_env("AICOLLECT_OAUTH_STATE_TTL_SECONDS")
    )
    """How long a connect URL's ``state`` stays usable."""

    callback_timeout_seconds: float = Field(
        10.0, gt=0, le=60, validation_alias=_env("AICOLLECT_CALLBACK_TIMEOUT_SECONDS")
    )
    """How long the gateway's OAuth callback waits for the integration service before it
    sends the browser to the dashboard with ``?qbo=error&reason=unavailable``."""

    qbo_requests_per_minute: int = Field(
        500, validation_alias=_env("AICOLLECT_QBO_REQUESTS_PER_MINUTE")
    )
    """Requests started per company (realm) per rolling minute by all integration replicas
    together (Intuit: 500; 0 = no cap); a tenth is kept for payment and webhook fetches."""

    qbo_max_concurrent: int = Field(10, validation_alias=_env("AICOLLECT_QBO_MAX_CONCURRENT"))
    """Requests in flight per company (realm) across all integration replicas (Intuit: 10;
    0 = no cap); a fifth is kept for payment and webhook fetches."""

    qbo_backoff_base_seconds: float = Field(
        0.5, validation_alias=_env("AICOLLECT_QBO_BACKOFF_BASE_SECONDS")
    )
    """First retry delay after a 5xx or timeout from Intuit; doubles per attempt (jittered)."""

    cdc_interval_seconds: int = Field(
        900, ge=1, le=86_400, validation_alias=_env("AICOLLECT_CDC_INTERVAL_SECONDS")
    )
    """How often each connected realm gets a change-data-capture poll; at most daily."""

    cdc_overlap_seconds: int = Field(
        120, ge=0, le=3600, validation_alias=_env("AICOLLECT_CDC_OVERLAP_SECONDS")
    )
    """Each poll re-reads this much before the realm's high-water mark (late commits)."""

    cdc_max_objects: int = Field(
        1000, ge=2, le=1000, validation_alias=_env("AICOLLECT_CDC_MAX_OBJECTS")
    )
    """Intuit's cap on objects per CDC response; a response this full is split."""

    cdc_lookback_days: int = Field(
        30, ge=1, le=30, validation_alias=_env("AICOLLECT_CDC_LOOKBACK_DAYS")
    )
    """How far back CDC reaches (Intuit: 30 days); a longer gap is re-queried in full."""

    sync_tick_seconds: float = Field(
        5.0, gt=0, le=300, validation_alias=_env("AICOLLECT_SYNC_TICK_SECONDS")
    )
    """How often the sync scheduler looks for due backfills and polls (and a lifted kill switch)."""

    sync_max_jobs: int = Field(4, ge=1, le=64, validation_alias=_env("AICOLLECT_SYNC_MAX_JOBS"))
    """Backfills and polls this process runs at the same time (each realm: one at a time)."""

    backfill_retry_seconds: int = Field(
        60, ge=1, le=86_400, validation_alias=_env("AICOLLECT_BACKFILL_RETRY_SECONDS")
    )
    """First delay before a failed backfill resumes from its checkpoint (doubles, max 1 h)."""

    retention_interval_seconds: float = Field(
        3600.0, gt=0, le=86_400, validation_alias=_env("AICOLLECT_RETENTION_INTERVAL_SECONDS")
    )
    """How often each process's retention job runs."""

    retention_inbox_days: float = Field(
        7.0, ge=1, validation_alias=_env("AICOLLECT_RETENTION_INBOX_DAYS")
    )
    """Processed (or dropped) webhook inbox rows are kept this long; dead letters until a
    person replays them."""

    retention_outbox_days: float = Field(
        30.0, ge=1, validation_alias=_env("AICOLLECT_RETENTION_OUTBOX_DAYS")
    )
    """Outreach events are kept this long; a stream cursor older than what was purged is
    refused (CURSOR_EXPIRED) so its consumer resynchronises."""

    retention_audit_years: float = Field(
        7.0, ge=1, validation_alias=_env("AICOLLECT_RETENTION_AUDIT_YEARS")
    )
    """Audit records (both services) are kept this long."""

    retention_report_years: float = Field(
        7.0, ge=1, validation_alias=_env("AICOLLECT_RETENTION_REPORT_YEARS")
    )
    """Stored daily reconciliation reports are kept this long after their day ended."""

    report_default_time_zone: str = Field(
        "UTC", validation_alias=_env("AICOLLECT_REPORT_DEFAULT_TIME_ZONE")
    )
    """The IANA time zone of tenants that have none set: its midnight ends their report day."""

    report_grace_minutes: int = Field(
        15, ge=0, le=720, validation_alias=_env("AICOLLECT_REPORT_GRACE_MINUTES")
    )
    """How long after a tenant's local midnight its report for the day before is generated,
    so that payments made just before midnight and recorded a little later are in it."""

    report_tick_seconds: float = Field(
        60.0, gt=0, le=3600, validation_alias=_env("AICOLLECT_REPORT_TICK_SECONDS")
    )
    """How often the matcher's report scheduler looks for days due."""

    report_catch_up_days: int = Field(
        31, ge=1, le=400, validation_alias=_env("AICOLLECT_REPORT_CATCH_UP_DAYS")
    )
    """How many past days the scheduler fills in when their report is missing (the matcher
    was down at midnight); older days are generated only with RegenerateDailyReport."""

    integration_metrics_port: int = Field(
        9101, validation_alias=_env("AICOLLECT_INTEGRATION_METRICS_PORT")
    )
    """Where the integration process serves Prometheus ``/metrics`` (0 = off)."""

    matcher_metrics_port: int = Field(9102, validation_alias=_env("AICOLLECT_MATCHER_METRICS_PORT"))
    """Where the matcher serves Prometheus ``/metrics`` (0 = off)."""

    metrics_host: str = Field("127.0.0.1", validation_alias=_env("AICOLLECT_METRICS_HOST"))
    """The address the metrics ports listen on (``0.0.0.0`` in a pod, so Prometheus can
    scrape it; loopback on a shared machine)."""

    shutdown_grace_seconds: float = Field(
        10.0, validation_alias=_env("AICOLLECT_SHUTDOWN_GRACE_SECONDS")
    )
    """How long SIGTERM waits for in-flight calls before cancelling them."""

    webhook_max_bytes: int = Field(
        2 * 1024 * 1024, validation_alias=_env("AICOLLECT_WEBHOOK_MAX_BYTES")
    )
    """Largest webhook body the gateway accepts (Intuit sends at most about 1 MB)."""

    gateway_read_timeout_seconds: float = Field(
        10.0, gt=0, le=300, validation_alias=_env("AICOLLECT_GATEWAY_READ_TIMEOUT_SECONDS")
    )
    """A request's headers and body must have arrived this long after its first byte, or the
    gateway drops the connection (slow clients, slowloris)."""

    log_level: str = Field("INFO", validation_alias=_env("AICOLLECT_LOG_LEVEL"))
    log_format: Literal["json", "text"] = Field(
        "json", validation_alias=_env("AICOLLECT_LOG_FORMAT")
    )

    qbo_client_id: str | None = Field(None, validation_alias=_env("QBO_CLIENT_ID"))
    qbo_client_secret: SecretStr | None = Field(None, validation_alias=_env("QBO_CLIENT_SECRET"))
    qbo_redirect_uri: str | None = Field(None, validation_alias=_env("QBO_REDIRECT_URI"))
    qbo_webhook_verifier_token: SecretStr | None = Field(
        None, validation_alias=_env("QBO_WEBHOOK_VERIFIER_TOKEN")
    )
    qbo_webhook_verifier_token_previous: SecretStr | None = Field(
        None, validation_alias=_env("QBO_WEBHOOK_VERIFIER_TOKEN_PREVIOUS")
    )
    qbo_discovery_url: str = Field(INTUIT_DISCOVERY_URL, validation_alias=_env("QBO_DISCOVERY_URL"))
    qbo_api_base_url: str = Field(INTUIT_API_BASE_URL, validation_alias=_env("QBO_API_BASE_URL"))

    # Xero: the integration runs it when XERO_CLIENT_ID is set.
    xero_client_id: str | None = Field(None, validation_alias=_env("XERO_CLIENT_ID"))
    xero_client_secret: SecretStr | None = Field(None, validation_alias=_env("XERO_CLIENT_SECRET"))
    xero_redirect_uri: str | None = Field(None, validation_alias=_env("XERO_REDIRECT_URI"))
    xero_webhook_key: SecretStr | None = Field(None, validation_alias=_env("XERO_WEBHOOK_KEY"))
    xero_webhook_key_previous: SecretStr | None = Field(
        None, validation_alias=_env("XERO_WEBHOOK_KEY_PREVIOUS")
    )
    xero_scope_style: Literal["granular", "broad"] = Field(
        "granular", validation_alias=_env("XERO_SCOPE_STYLE")
    )
    """``granular`` for Xero apps created from 2 March 2026, ``broad`` for older ones."""
    xero_authorize_url: str = Field(XERO_AUTHORIZE_URL, validation_alias=_env("XERO_AUTHORIZE_URL"))
    xero_token_url: str = Field(XERO_TOKEN_URL, validation_alias=_env("XERO_TOKEN_URL"))
    xero_revocation_url: str = Field(
        XERO_REVOCATION_URL, validation_alias=_env("XERO_REVOCATION_URL")
    )
    xero_api_base_url: str = Field(XERO_API_BASE_URL, validation_alias=_env("XERO_API_BASE_URL"))
    xero_requests_per_minute: int = Field(
        60, ge=0, validation_alias=_env("AICOLLECT_XERO_REQUESTS_PER_MINUTE")
    )
    """Requests per organisation per rolling minute, all replicas together (Xero: 60)."""
    xero_requests_per_day: int = Field(
        5000, ge=0, validation_alias=_env("AICOLLECT_XERO_REQUESTS_PER_DAY")
    )
    """Requests per organisation per rolling day (Xero: 5,000; 1,000 on the Starter tier)."""
    xero_max_concurrent: int = Field(
        5, ge=0, validation_alias=_env("AICOLLECT_XERO_MAX_CONCURRENT")
    )
    """Requests in flight per organisation, all replicas together (Xero: 5)."""
    xero_app_requests_per_minute: int = Field(
        10_000, ge=0, validation_alias=_env("AICOLLECT_XERO_APP_REQUESTS_PER_MINUTE")
    )
    """Requests per rolling minute of the whole app, every organisation and replica
    together (Xero: 10,000; 0 = no cap)."""
    xero_placed_reread_seconds: float = Field(
        21_600, ge=0, validation_alias=_env("AICOLLECT_XERO_PLACED_REREAD_SECONDS")
    )
    """How often the poll re-reads every placed invoice by id (edits Xero's change times
    miss, such as a due date on a part-paid invoice); 0 = never."""

    @field_validator("report_default_time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone") from None
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Reads the settings from ``environ`` (default: the process environment)."""
        if environ is None:
            return cls()
        known = {
            str(choice)
            for field in cls.model_fields.values()
            if isinstance(field.validation_alias, AliasChoices)
            for choice in field.validation_alias.choices
        }
        return cls.model_validate({k: v for k, v in environ.items() if k.upper() in known})

    def require(self, *names: str) -> None:
        """Raises MissingSettingError naming every unset variable among ``names``."""
        missing = []
        for name in names:
            field = _FIELD_BY_ENV.get(name)
            if field is None:
                raise KeyError(f"unknown setting {name}")
            value = getattr(self, field)
            if value is None or (isinstance(value, SecretStr) and not value.get_secret_value()):
                missing.append(name)
        if missing:
            raise MissingSettingError(missing)

    def model_post_init(self, context: Any, /) -> None:
        # Whatever process reads these settings redacts their secrets from its logs.
        super().model_post_init(context)
        logs.redact_values(self.secret_values())

    def secret_values(self) -> list[str]:
        """Every secret value configured here: each secret setting, each token key on its
        own, and the database password."""
        values = [
            value.get_secret_value()
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        ]
        if self.token_keys is not None:
            keys = self.token_keys.get_secret_value().split(",")
            values += [key.split(":", 1)[-1].strip() for key in keys]
        if self.database_url:
            try:
                password = urlsplit(self.database_url).password
            except ValueError:
                password = None
            if password:
                values.append(unquote(password))
                values.append(password)
        return [value for value in values if value]

    @property
    def uses_emulator(self) -> bool:
        """True when Intuit's URLs were not configured, so the local emulator stands in."""
        return self.qbo_api_base_url == INTUIT_API_BASE_URL and self.env == "local"

    @property
    def uses_xero_emulator(self) -> bool:
        """True when Xero's URLs were not configured, so the local Xero emulator stands in."""
        return self.xero_api_base_url == XERO_API_BASE_URL and self.env == "local"


def _field_by_env() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, field in Settings.model_fields.items():
        if isinstance(field.validation_alias, AliasChoices):
            for choice in field.validation_alias.choices:
                out[str(choice)] = name
    return out


_FIELD_BY_ENV = _field_by_env()

# What each process needs; checked at start-up so a misconfigured deploy fails fast.
INTEGRATION_REQUIRES = (
    "AICOLLECT_DATABASE_URL",
    "AICOLLECT_INTERNAL_TOKEN",
    "AICOLLECT_TOKEN_KEYS",
    "QBO_CLIENT_ID",
    "QBO_CLIENT_SECRET",
    "QBO_REDIRECT_URI",
    "QBO_WEBHOOK_VERIFIER_TOKEN",
)
MATCHER_REQUIRES = ("AICOLLECT_DATABASE_URL", "AICOLLECT_INTERNAL_TOKEN")
GATEWAY_REQUIRES = ("AICOLLECT_INTERNAL_TOKEN", "AICOLLECT_JWT_SECRET")
