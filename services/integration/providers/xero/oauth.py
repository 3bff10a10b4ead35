"""Xero's OAuth 2.0 for a confidential web app: authorize URL, code exchange, refresh,
revoke, and the claims of Xero's access token (a JWT).

Client authentication is HTTP Basic (one of the two styles in production use; the other
posts the secret in the body). Token values never appear in exceptions or logs; Xero's
``Xero-Correlation-Id`` does, so support can trace a call.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode

import aiohttp

from services.integration.providers.base import (
    InvalidGrant,
    OAuthError,
    OAuthUnavailable,
    TokenSet,
)

log = logging.getLogger(__name__)

# Least privilege, read only, plus offline_access for a refresh token. Apps created from
# 2 March 2026 must ask for granular scopes; older apps keep the broad ones until they
# migrate (a token never gains granular scopes without a new consent).
GRANULAR_SCOPES = (
    "offline_access",
    "accounting.invoices.read",  # invoices and credit notes
    "accounting.payments.read",  # payments, overpayments, prepayments
    "accounting.contacts.read",
    "accounting.settings.read",  # the organisation's time zone and base currency
)
BROAD_SCOPES = (
    "offline_access",
    "accounting.transactions.read",
    "accounting.contacts.read",
    "accounting.settings.read",
)
SCOPE_STYLES = {"granular": GRANULAR_SCOPES, "broad": BROAD_SCOPES}
# Xero does not say when an unused refresh token ends in the token response; its FAQ says
# 60 days, older answers 30. We show (and plan for) the shorter.
REFRESH_IDLE_S = 30 * 86400.0
CORRELATION_HEADER = "Xero-Correlation-Id"


def token_claims(access_token: str) -> dict[str, Any]:
    """The claims of Xero's access token (a JWT), read without checking its signature: it
    came straight from Xero's token endpoint over TLS, and it is only used to tell which
    Xero user and which consent it belongs to. Empty when it is not a JWT."""
    parts = access_token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (binascii.Error, ValueError):
        return {}
    return claims if isinstance(claims, dict) else {}


class XeroOAuth:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        authorize_url: str,
        token_url: str,
        revocation_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: tuple[str, ...] = GRANULAR_SCOPES,
        timeout_s: float = 15.0,
    ) -> None:
        self._http = http
        self._authorize_url = authorize_url
        self._token_url = token_url
        self._revocation_url = revocation_url
        self._client_id = client_id
        self._basic = aiohttp.encode_basic_auth(client_id, client_secret)
        self.redirect_uri = redirect_uri
        self.scopes = scopes
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def authorize_url(self, state: str) -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": self.redirect_uri,
                "scope": " ".join(self.scopes),
                "state": state,
            }
        )
        return f"{self._authorize_url}?{query}"

    async def _token_call(self, form: dict[str, str]) -> TokenSet:
        now = time.time()
        try:
            async with self._http.post(
                self._token_url,
                data=form,
                headers={"Accept": "application/json", "Authorization": self._basic},
                timeout=self._timeout,
            ) as resp:
                trace = resp.headers.get(CORRELATION_HEADER)
                try:
                    body: Any = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = {}
                body = body if isinstance(body, dict) else {}
                if resp.status >= 500:
                    raise OAuthUnavailable(f"Xero token endpoint HTTP {resp.status}")
                if resp.status != 200:
                    error = str(body.get("error") or f"http_{resp.status}")
                    cls = InvalidGrant if error == "invalid_grant" else OAuthError
                    log.warning(
                        "Xero token endpoint refused the request",
                        extra={"error": error, "status": resp.status, "correlation_id": trace},
                    )
                    raise cls(error, status=resp.status, intuit_tid=trace)
                if "error" in body:  # a 200 carrying an error is never taken as tokens
                    raise OAuthError(str(body["error"]), status=200, intuit_tid=trace)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OAuthUnavailable(
                f"Xero token endpoint unreachable: {type(exc).__name__}"
            ) from None
        tokens = TokenSet.from_response(body, now)
        claims = token_claims(tokens.access_token)
        return replace(
            tokens,
            refresh_expires_at=tokens.refresh_expires_at or now + REFRESH_IDLE_S,
            subject=str(claims.get("xero_userid") or ""),
            consent_id=str(claims.get("authentication_event_id") or ""),
        )

    async def exchange_code(self, code: str) -> TokenSet:
        return await self._token_call(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri}
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token_call(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )

    async def revoke(self, token: str) -> None:
        """Revokes a refresh token: at Xero this also removes every connection of that
        user to our app, so the core calls it only once no organisation of ours uses it."""
        try:
            async with self._http.post(
                self._revocation_url,
                data={"token": token},
                headers={"Accept": "application/json", "Authorization": self._basic},
                timeout=self._timeout,
            ) as resp:
                trace = resp.headers.get(CORRELATION_HEADER)
                if resp.status >= 500:
                    raise OAuthUnavailable(f"Xero revocation endpoint HTTP {resp.status}")
                if resp.status != 200:
                    try:
                        body: Any = await resp.json(content_type=None)
                    except (ValueError, aiohttp.ContentTypeError):
                        body = {}
                    error = str((body or {}).get("error") or f"revoke_http_{resp.status}")
                    cls = InvalidGrant if error == "invalid_grant" else OAuthError
                    raise cls(error, status=resp.status, intuit_tid=trace)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OAuthUnavailable(
                f"Xero revocation endpoint unreachable: {type(exc).__name__}"
            ) from None
