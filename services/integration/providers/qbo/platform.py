"""QuickBooks Online as an ``AccountingPlatform``: Intuit's OAuth, the QBO API client and
its errors, Intuit's webhooks, and the reader the sync uses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import aiohttp

from aicollect.matching.v1 import matching_service_pb2 as mpb
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
    InvoiceFacts,
    TokenSet,
    WebhookEvent,
)
from services.integration.providers.qbo import ENTITIES, NAME, mapping, webhooks
from services.integration.providers.qbo.api import (
    QboApi,
    QboAuthError,
    QboError,
    QboThrottled,
    QboUnavailable,
)
from services.integration.providers.qbo.oauth import ACCOUNTING_SCOPE, IntuitOAuth
from services.integration.providers.qbo.reader import QboReader


class QboFacts:
    """QBO JSON -> accounting facts (``mapping``), under the seam's names."""

    def entity_id(self, entity: Mapping[str, Any]) -> str:
        return mapping.entity_id(entity)

    def is_deleted(self, entity: Mapping[str, Any]) -> bool:
        return mapping.is_deleted(entity)

    def invoice_facts(self, invoice: Mapping[str, Any]) -> InvoiceFacts:
        return mapping.invoice_facts(invoice)

    def invoice(self, invoice: Mapping[str, Any]) -> mpb.AccountingInvoice:
        return mapping.qbo_invoice(invoice)

    def payment(self, payment: Mapping[str, Any]) -> mpb.AccountingPayment:
        return mapping.qbo_payment(payment)

    def debtor_contact(self, customer: Mapping[str, Any]) -> mpb.DebtorContact:
        return mapping.debtor_contact(customer)

    def placement_input(
        self,
        invoice: Mapping[str, Any],
        *,
        facts: InvoiceFacts,
        debtor: mpb.DebtorContact | None,
    ) -> mpb.PlacementInput:
        return mapping.placement_input(invoice, facts=facts, debtor=debtor)

    def linked_invoice_ids(self, entity: Mapping[str, Any]) -> list[str]:
        return mapping.linked_invoice_ids(entity)

    def parse_time(self, text: str) -> datetime:
        return mapping.parse_qbo_time(text)


# Intuit's per-company (realm and app) limits; the settings may lower them.
INTUIT_LIMITS = RequestLimits.of(concurrent=10, per_minute=500)


class QboPlatform:
    name: str = NAME
    display_name: str = "QuickBooks"
    scopes: tuple[str, ...] = (ACCOUNTING_SCOPE,)
    entities: tuple[str, ...] = ENTITIES
    facts: AccountingFacts = QboFacts()
    shared_grants: bool = False  # a grant covers the one company that authorised it
    placed_reread_seconds: float = 0.0  # CDC reports every change
    app_request_limits: RequestLimits | None = None  # Intuit's limits are per company

    def __init__(
        self,
        oauth: IntuitOAuth,
        api: QboApi,
        webhook_verifier_tokens: Iterable[str] = (),
        request_limits: RequestLimits = INTUIT_LIMITS,
    ) -> None:
        self.oauth = oauth
        self.api = api
        self.request_limits = request_limits
        # The current verifier token and, during a rotation, the previous one.
        self._verifier_tokens = tuple(t for t in webhook_verifier_tokens if t)
        self._names = {e.lower(): e for e in ENTITIES}

    @classmethod
    def from_settings(
        cls, settings: Settings, http: aiohttp.ClientSession, metrics: IntegrationMetrics
    ) -> QboPlatform:
        settings.require("QBO_CLIENT_ID", "QBO_CLIENT_SECRET", "QBO_REDIRECT_URI")
        assert settings.qbo_client_id is not None
        assert settings.qbo_client_secret is not None
        assert settings.qbo_redirect_uri is not None
        oauth = IntuitOAuth(
            http,
            discovery_url=settings.qbo_discovery_url,
            client_id=settings.qbo_client_id,
            client_secret=settings.qbo_client_secret.get_secret_value(),
            redirect_uri=settings.qbo_redirect_uri,
        )
        verifiers = [
            secret.get_secret_value()
            for secret in (
                settings.qbo_webhook_verifier_token,
                settings.qbo_webhook_verifier_token_previous,
            )
            if secret is not None
        ]
        limits = RequestLimits.of(
            concurrent=settings.qbo_max_concurrent, per_minute=settings.qbo_requests_per_minute
        )
        return cls(
            oauth, QboApi(http, settings.qbo_api_base_url, metrics=metrics), verifiers, limits
        )

    # -- OAuth --------------------------------------------------------------------------

    async def authorize_url(self, state: str) -> str:
        return await self.oauth.authorize_url(state)

    async def exchange_code(self, code: str) -> TokenSet:
        return await self.oauth.exchange_code(code)

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self.oauth.refresh(refresh_token)

    async def revoke(self, token: str) -> None:
        await self.oauth.revoke(token)

    async def company(self, company_id: str, access_token: str) -> Company | None:
        info = await self.api.company_info(company_id, access_token)
        if not info:  # a 200 without a CompanyInfo object confirms nothing
            return None
        return Company(company_id, str(info.get("CompanyName") or ""))

    async def consented_companies(self, tokens: TokenSet) -> list[Company]:
        return []  # Intuit's callback names the company (realmId)

    async def release_company(self, company: Company, access_token: str) -> None:
        return None  # at Intuit, revoking the grant is how a company is released

    # -- webhooks -----------------------------------------------------------------------

    def verify_webhook(self, body: bytes, signature: str) -> None:
        webhooks.verify_signature(body, signature, self._verifier_tokens)

    def parse_webhook(self, body: bytes) -> list[WebhookEvent]:
        return webhooks.parse_payload(body)

    # -- reading ------------------------------------------------------------------------

    def reader(
        self, caller: Caller, tenant_id: str, realm_id: str, priority: Priority
    ) -> QboReader:
        return QboReader(caller, self.api, tenant_id, realm_id, priority)

    def entity_name(self, name: str) -> str | None:
        return self._names.get(name.strip().lower())

    # -- errors -------------------------------------------------------------------------

    def classify_error(self, exc: BaseException) -> CallFailure | None:
        if not isinstance(exc, QboError):
            return None
        if isinstance(exc, QboThrottled):
            kind, retry_after = FailureKind.THROTTLED, exc.retry_after_s
        else:
            retry_after = 60.0
            if isinstance(exc, QboUnavailable):
                kind = FailureKind.UNAVAILABLE
            elif isinstance(exc, QboAuthError):
                kind = FailureKind.UNAUTHORIZED
            else:
                kind = FailureKind.REFUSED
        return CallFailure(
            kind,
            str(exc)[:500],
            status=exc.status,
            code=exc.code,
            trace_id=exc.intuit_tid,
            retry_after_s=retry_after,
        )


def _conforms(platform: QboPlatform) -> AccountingPlatform:
    return platform  # mypy checks here that QboPlatform implements the whole seam
