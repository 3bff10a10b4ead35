"""Intuit OAuth 2.0: discovery, authorize URL, code exchange, refresh, revoke.

Endpoints come from the discovery document (Intuit's advice), so the same code talks to
Intuit or to the emulator. Token values never appear in exceptions or logs; Intuit's
``intuit_tid`` does, so support can trace a call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
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

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
HARD_EXPIRY_HEADER = "x-include-refresh-token-hard-expires-in"
DISCOVERY_TTL_S = 3600.0


@dataclass(frozen=True)
class Endpoints:
    authorization: str
    token: str
    revocation: str


class IntuitOAuth:
    def __init__(
        self,
        http: aiohttp.ClientSession,
        *,
        discovery_url: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        timeout_s: float = 15.0,
    ) -> None:
        self._http = http
        self._discovery_url = discovery_url
        self._client_id = client_id
        self._basic = aiohttp.encode_basic_auth(client_id, client_secret)
        self.redirect_uri = redirect_uri
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._endpoints: Endpoints | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def endpoints(self) -> Endpoints:
        """The discovery document's endpoints, cached for an hour."""
        async with self._lock:
            if self._endpoints is None or time.monotonic() - self._fetched_at > DISCOVERY_TTL_S:
                try:
                    async with self._http.get(self._discovery_url, timeout=self._timeout) as resp:
                        if resp.status != 200:
                            raise OAuthUnavailable(
                                f"discovery document answered HTTP {resp.status}"
                            )
                        doc = await resp.json(content_type=None)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise OAuthUnavailable(f"discovery document unreachable: {exc!r}") from None
                self._endpoints = Endpoints(
                    authorization=doc["authorization_endpoint"],
                    token=doc["token_endpoint"],
                    revocation=doc["revocation_endpoint"],
                )
                self._fetched_at = time.monotonic()
            return self._endpoints

    async def authorize_url(self, state: str) -> str:
        endpoints = await self.endpoints()
        query = urlencode(
            {
                "client_id": self._client_id,
                "response_type": "code",
                "scope": ACCOUNTING_SCOPE,
                "redirect_uri": self.redirect_uri,
                "state": state,
            }
        )
        return f"{endpoints.authorization}?{query}"

    async def _token_call(self, form: dict[str, str], headers: dict[str, str]) -> TokenSet:
        endpoints = await self.endpoints()
        now = time.time()
        try:
            async with self._http.post(
                endpoints.token,
                data=form,
                headers={"Accept": "application/json", "Authorization": self._basic, **headers},
                timeout=self._timeout,
            ) as resp:
                tid = resp.headers.get("intuit_tid")
                body: dict[str, Any] = {}
                try:
                    body = await resp.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = {}
                if resp.status >= 500:
                    raise OAuthUnavailable(f"token endpoint HTTP {resp.status} (intuit_tid={tid})")
                if resp.status != 200:
                    error = str(body.get("error") or f"http_{resp.status}")
                    cls = InvalidGrant if error == "invalid_grant" else OAuthError
                    log.warning(
                        "Intuit token endpoint refused the request",
                        extra={"error": error, "status": resp.status, "intuit_tid": tid},
                    )
                    raise cls(error, status=resp.status, intuit_tid=tid)
                if "error" in body:  # a 200 carrying an error must never be taken as tokens
                    raise OAuthError(str(body["error"]), status=200, intuit_tid=tid)
                return TokenSet.from_response(body, now)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OAuthUnavailable(f"token endpoint unreachable: {type(exc).__name__}") from None

    async def exchange_code(self, code: str) -> TokenSet:
        return await self._token_call(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri},
            {},
        )

    async def refresh(self, refresh_token: str) -> TokenSet:
        return await self._token_call(
            {"grant_type": "refresh_token", "refresh_token": refresh_token},
            {HARD_EXPIRY_HEADER: "true"},
        )

    async def revoke(self, token: str) -> None:
        endpoints = await self.endpoints()
        try:
            async with self._http.post(
                endpoints.revocation,
                json={"token": token},
                headers={"Accept": "application/json", "Authorization": self._basic},
                timeout=self._timeout,
            ) as resp:
                tid = resp.headers.get("intuit_tid")
                if resp.status >= 500:
                    raise OAuthUnavailable(f"revoke endpoint HTTP {resp.status} (intuit_tid={tid})")
                if resp.status != 200:
                    raise OAuthError(
                        f"revoke_http_{resp.status}", status=resp.status, intuit_tid=tid
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OAuthUnavailable(f"revoke endpoint unreachable: {type(exc).__name__}") from None
