"""Xero as an ``AccountingPlatform``: Xero's OAuth (one grant per Xero user, covering
every organisation that user connected), the Accounting API client and its errors, Xero's
webhooks, and the reader the sync uses."""

from __future__ import annotations

from collections.abc import Iterable

import aiohttp

from aicollect.metrics import IntegrationMetrics
from aicollect.settings import Settings
from services.integration.budget import Priority, RequestLimits
from services.integration.providers.base import (
    AccountingFacts,
    AccountingPlatform,
    Caller,
    CallFailure,
    Company,
    FailureKind,
    TokenSet,
    WebhookEvent,
)
from services.integration.providers.xero import ENTITIES, NAME, webhooks
from services.integration.providers.xero.api import (
    XeroApi,
    XeroAuthError,
    XeroError,
    XeroForbidden,
    XeroThrottled,
    XeroUnavailable,
)
from services.integration.providers.xero.facts import XeroFacts
from services.integration.providers.xero.oauth import SCOPE_STYLES, XeroOAuth
from services.integration.providers.xero.reader import XeroReader

# Xero's per-organisation limits (every replica together); the settings may lower them.
XERO_LIMITS = RequestLimits.of(concurrent=5, per_minute=60, per_day=5000)
# Xero's limit of the whole app, every organisation together.
XERO_APP_LIMITS = RequestLimits.of(per_minute=10_000)
# Xero's spelling of the entities its webhooks and API name -> the core's canonical names.
CANONICAL = {
    "invoice": "Invoice",
    "payment": "Payment",
    "creditnote": "CreditMemo",
    "creditmemo": "CreditMemo",
    "contact": "Customer",
    "customer": "Customer",
}


class XeroPlatform:
    name: str = NAME
    display_name: str = "Xero"
    entities: tuple[str, ...] = ENTITIES
    facts: AccountingFacts = XeroFacts()
    shared_grants: bool = True  # one grant per Xero user, covering its organisations
    # Some edits (a due date on a part-paid invoice) keep UpdatedDateUTC: re-read what is
    # placed four times a day (about 25 calls per 1,000 placed invoices).
    placed_reread_seconds: float = 6 * 3600.0

    def __init__(
        self,
        oauth: XeroOAuth,
        api: XeroApi,
        webhook_keys: Iterable[str] = (),
        request_limits: RequestLimits = XERO_LIMITS,
        placed_reread_seconds: float = 6 * 3600.0,
        app_request_limits: RequestLimits | None = XERO_APP_LIMITS,
    ) -> None:
        self.oauth = oauth
        self.api = api
        self.scopes = oauth.scopes
        self.request_limits = request_limits
        self.placed_reread_seconds = placed_reread_seconds
        self.app_request_limits = app_request_limits
        # The current webhook key and, during a rotation, the previous one.
        self._webhook_keys = tuple(k for k in webhook_keys if k)

    @classmethod
    def from_settings(
        cls, settings: Settings, http: aiohttp.ClientSession, metrics: IntegrationMetrics
    ) -> XeroPlatform:
        settings.require("XERO_CLIENT_ID", "XERO_CLIENT_SECRET", "XERO_REDIRECT_URI")
        assert settings.xero_client_id is not None
        assert settings.xero_client_secret is not None
        assert settings.xero_redirect_uri is not None
        oauth = XeroOAuth(
            http,
            authorize_url=settings.xero_authorize_url,
            token_url=settings.xero_token_url,
            revocation_url=settings.xero_revocation_url,
            client_id=settings.xero_client_id,
            client_secret=settings.xero_client_secret.get_secret_value(),
            redirect_uri=settings.xero_redirect_uri,
            scopes=SCOPE_STYLES[settings.xero_scope_style],
        )
        keys = [
            secret.get_secret_value()
            for secret in (settings.xero_webhook_key, settings.xero_webhook_key_previous)
            if secret is not None
        ]
        limits = RequestLimits.of(
            concurrent=settings.xero_max_concurrent,
            per_minute=settings.xero_requests_per_minute,
            per_day=settings.xero_requests_per_day,
        )
        return cls(
            oauth,
            XeroApi(http, settings.xero_api_base_url, metrics=metrics),
            keys,
            limits,
            settings.xero_placed_reread_seconds,
            (
                RequestLimits.of(per_minute=settings.xero_app_requests_per_minute)
                if settings.xero_app_requests_per_minute
                else None
            ),
        )

    # -- OAuth --------------------------------------------------------------------------

    async def authorize_url(self, state: str) -> str:
        return self.oauth.authorize_url(state)

    async def exchange_code(self, code: str) -> TokenSet:
        return await self.oauth.exchange_code(code)

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self.oauth.refresh(refresh_token)

    async def revoke(self, token: str) -> None:
        await self.oauth.revoke(token)

    async def company(self, company_id: str, access_token: str) -> Company | None:
        """The organisation when the token's user is connected to it."""
        for connection in await self.api.connections(access_token):
            if connection.get("tenantId") == company_id:
                return _company(connection)
        return None

    async def consented_companies(self, tokens: TokenSet) -> list[Company]:
        """The organisations chosen in this consent: ``/connections`` filtered by the
        token's ``authentication_event_id`` (never "the first one")."""
        if not tokens.consent_id:
            return []
        connections = await self.api.connections(tokens.access_token, tokens.consent_id)
        return [
            _company(c)
            for c in connections
            if c.get("authEventId") == tokens.consent_id
            and str(c.get("tenantType") or "ORGANISATION").upper() == "ORGANISATION"
            and c.get("tenantId")
        ]

    async def release_company(self, company: Company, access_token: str) -> None:
        if company.connection_id:
            await self.api.delete_connection(company.connection_id, access_token)

    # -- webhooks -----------------------------------------------------------------------

    def verify_webhook(self, body: bytes, signature: str) -> None:
        webhooks.verify_signature(body, signature, self._webhook_keys)

    def parse_webhook(self, body: bytes) -> list[WebhookEvent]:
        return webhooks.parse_payload(body)

    # -- reading ------------------------------------------------------------------------

    def reader(
        self, caller: Caller, tenant_id: str, realm_id: str, priority: Priority
    ) -> XeroReader:
        return XeroReader(caller, self.api, tenant_id, realm_id, priority)

    def entity_name(self, name: str) -> str | None:
        return CANONICAL.get(name.strip().lower())

    # -- errors -------------------------------------------------------------------------

    def classify_error(self, exc: BaseException) -> CallFailure | None:
        return classify_failure(exc)


def classify_failure(exc: BaseException) -> CallFailure | None:
    """What an exception of Xero's client means to the core; None when it is not one."""
    if not isinstance(exc, XeroError):
        return None
    retry_after = 60.0
    if isinstance(exc, XeroThrottled):
        kind, retry_after = FailureKind.THROTTLED, exc.retry_after_s
    elif isinstance(exc, XeroUnavailable):
        kind = FailureKind.UNAVAILABLE
    elif isinstance(exc, XeroAuthError | XeroForbidden):
        # 403: the organisation was disconnected in Xero; a refresh tells the rest.
        kind = FailureKind.UNAUTHORIZED
    else:
        kind = FailureKind.REFUSED
    return CallFailure(
        kind,
        str(exc)[:500],
        status=exc.status,
        code=exc.code,
        trace_id=exc.trace_id,
        retry_after_s=retry_after,
        app_wide=isinstance(exc, XeroThrottled) and exc.problem == "appminute",
    )


def _company(connection: dict[str, object]) -> Company:
    return Company(
        str(connection.get("tenantId") or ""),
        str(connection.get("tenantName") or ""),
        str(connection.get("id") or ""),
    )


def _conforms(platform: XeroPlatform) -> AccountingPlatform:
    return platform  # mypy checks here that XeroPlatform implements the whole seam
