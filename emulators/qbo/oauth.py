"""Intuit's OAuth 2.0 server state: apps, authorization codes, grants and tokens.

A *grant* is one app's connection to one company.  Its refresh token rotates on every
refresh; the superseded value, like a revoked one, gets ``invalid_grant``.  Access tokens
issued earlier stay valid until they expire unless the grant is revoked.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

from emulators.common.oauth import ClientRegistry, OAuthError
from emulators.qbo.config import ACCOUNTING_SCOPE, PAYMENT_SCOPE, AppConfig, EmulatorConfig

KNOWN_SCOPES = frozenset(
    {
        ACCOUNTING_SCOPE,
        PAYMENT_SCOPE,
        "openid",
        "profile",
        "email",
        "phone",
        "address",
        "intuit_name",
        "com.intuit.quickbooks.payroll",
        "com.intuit.quickbooks.payroll.timetracking",
        "com.intuit.quickbooks.payroll.benefits",
        "project-management.project",
        "app-foundations.custom-field-definitions",
        "app-foundations.custom-field-definitions.read",
        "indirect-tax.tax-calculation.quickbooks",
    }
)
_JWE_HEADER = base64.urlsafe_b64encode(b'{"enc":"A128CBC-HS256","alg":"dir"}').decode().rstrip("=")


class AccessDenied(Exception):
    """An API call the gateway refuses: 401/3200 (token) or 403/3100 (app not authorised)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _access_token() -> str:
    return f"{_JWE_HEADER}..{secrets.token_urlsafe(96)}.{secrets.token_urlsafe(16)}"


def _refresh_token() -> str:
    return "RT1-" + secrets.token_urlsafe(36)


def _code() -> str:
    return "AB11" + secrets.token_urlsafe(36)


@dataclass(slots=True)
class App:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    webhook_url: str | None
    verifier_token: str
    webhook_format: str
    name: str

    @classmethod
    def from_config(cls, cfg: AppConfig) -> App:
        return cls(
            cfg.client_id,
            cfg.client_secret,
            list(cfg.redirect_uris),
            cfg.webhook_url,
            cfg.verifier_token,
            cfg.webhook_format,
            cfg.name,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
            "webhook_url": self.webhook_url,
            "verifier_token": self.verifier_token,
            "webhook_format": self.webhook_format,
            "name": self.name,
        }


@dataclass(slots=True)
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    realm_id: str | None
    scopes: tuple[str, ...]
    expires_at: float
    used: bool = False
    grant_id: str | None = None


@dataclass(slots=True)
class Grant:
    id: str
    client_id: str
    realm_id: str | None
    scopes: tuple[str, ...]
    created_at: float
    hard_expires_at: float
    refresh_token: str
    refresh_expires_at: float
    revoked: bool = False
    revoked_reason: str = ""
    refreshes: int = 0
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expires_at

    def live(self, now: float) -> bool:
        return not self.revoked and now < self.refresh_expires_at and now < self.hard_expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "realm_id": self.realm_id,
            "scopes": list(self.scopes),
            "revoked": self.revoked,
            "revoked_reason": self.revoked_reason,
            "refreshes": self.refreshes,
        }


class OAuthState(ClientRegistry[App]):
    basic_realm = "Intuit"

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__()
        self.config = config
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self._refresh_index: dict[str, str] = {}  # every refresh token ever issued -> grant id
        self._access_index: dict[str, str] = {}
        self._grant_seq = 0

    # -- authorization codes -----------------------------------------------------------

    def issue_code(
        self, app: App, redirect_uri: str, realm_id: str | None, scopes: tuple[str, ...], now: float
    ) -> str:
        code = _code()
        self.codes[code] = AuthCode(
            code, app.client_id, redirect_uri, realm_id, scopes, now + self.config.auth_code_ttl
        )
        return code

    def exchange_code(
        self, app: App, code: str, redirect_uri: str, now: float, *, hard_expiry: bool
    ) -> dict[str, Any]:
        entry = self.codes.get(code)
        if entry is None or entry.client_id != app.client_id:
            raise OAuthError(400, "invalid_grant", "Authorization code is invalid")
        if entry.used:
            # RFC 6749 4.1.2: a replayed code revokes what it produced; Intuit warns that
            # repeated exchange requests may invalidate the tokens.
            if entry.grant_id is not None:
                self.revoke_grant(self.grants[entry.grant_id], "authorization code replayed")
            raise OAuthError(400, "invalid_grant", "Authorization code has already been used")
        if now >= entry.expires_at:
            raise OAuthError(400, "invalid_grant", "Authorization code has expired")
        if redirect_uri != entry.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match")
        entry.used = True
        self._grant_seq += 1
        grant = Grant(
            id=f"g{self._grant_seq}",
            client_id=app.client_id,
            realm_id=entry.realm_id,
            scopes=entry.scopes,
            created_at=now,
            hard_expires_at=now + self.config.refresh_token_hard_ttl,
            refresh_token=_refresh_token(),
            refresh_expires_at=now + self.config.refresh_token_ttl,
        )
        entry.grant_id = grant.id
        self.grants[grant.id] = grant
        self._refresh_index[grant.refresh_token] = grant.id
        return self._token_response(grant, now, hard_expiry=hard_expiry)

    # -- refresh and revoke ------------------------------------------------------------

    def refresh(
        self, app: App, refresh_token: str, now: float, *, hard_expiry: bool
    ) -> dict[str, Any]:
        grant_id = self._refresh_index.get(refresh_token)
        grant = self.grants.get(grant_id) if grant_id is not None else None
        if grant is None or grant.client_id != app.client_id:
            raise OAuthError(400, "invalid_grant", "Incorrect Token type or clientID")
        if grant.revoked:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        if refresh_token != grant.refresh_token:
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        if not grant.live(now):
            raise OAuthError(400, "invalid_grant", "Token has been expired or revoked.")
        # Rotate on every refresh; the rolling window restarts, capped by the hard expiry.
        grant.refresh_token = _refresh_token()
        grant.refresh_expires_at = min(now + self.config.refresh_token_ttl, grant.hard_expires_at)
        grant.refreshes += 1
        self._refresh_index[grant.refresh_token] = grant.id
        return self._token_response(grant, now, hard_expiry=hard_expiry)

    def revoke_token(self, app: App, token: str) -> None:
        """Revoking either token of a grant revokes the whole grant (RFC 7009: 200 if unknown)."""
        grant_id = self._refresh_index.get(token) or self._access_index.get(token)
        grant = self.grants.get(grant_id) if grant_id is not None else None
        if grant is not None and grant.client_id == app.client_id:
            self.revoke_grant(grant, "revoked by the app")

    def revoke_grant(self, grant: Grant, reason: str) -> None:
        grant.revoked = True
        grant.revoked_reason = grant.revoked_reason or reason

    def disconnect(self, realm_id: str, client_id: str | None) -> list[Grant]:
        """The user disconnects the app in QBO: every grant of that app on that realm ends."""
        ended = []
        for grant in self.grants.values():
            if grant.realm_id != realm_id or grant.revoked:
                continue
            if client_id is not None and grant.client_id != client_id:
                continue
            self.revoke_grant(grant, "disconnected in QuickBooks")
            ended.append(grant)
        return ended

    def _token_response(self, grant: Grant, now: float, *, hard_expiry: bool) -> dict[str, Any]:
        access = _access_token()
        grant.access_tokens[access] = now + self.config.access_token_ttl
        self._access_index[access] = grant.id
        body: dict[str, Any] = {
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": grant.refresh_token,
            "expires_in": self.config.access_token_ttl,
            "x_refresh_token_expires_in": int(grant.refresh_expires_at - now),
        }
        if hard_expiry:
            body["x_refresh_token_hard_expires_in"] = int(grant.hard_expires_at - now)
        return body

    # -- API access ---------------------------------------------------------------------

    def grant_for_access_token(self, token: str, now: float) -> Grant | None:
        """The grant a live access token belongs to, or None."""
        grant_id = self._access_index.get(token)
        grant = self.grants.get(grant_id) if grant_id is not None else None
        if grant is None or grant.revoked or now >= grant.access_tokens[token]:
            return None
        return grant

    def check_access(self, header: str | None, realm_id: str, now: float) -> Grant:
        if not header or not header.lower().startswith("bearer "):
            raise AccessDenied(401, "Authorization header is missing or not a Bearer token")
        token = header[7:].strip()
        grant_id = self._access_index.get(token)
        grant = self.grants.get(grant_id) if grant_id is not None else None
        if grant is None:
            raise AccessDenied(401, "Token invalid")
        if grant.revoked:
            raise AccessDenied(401, "Token revoked")
        if now >= grant.access_tokens[token]:
            raise AccessDenied(401, "Token expired")
        if grant.realm_id != realm_id:
            raise AccessDenied(403, "The app is not authorized for this company")
        if ACCOUNTING_SCOPE not in grant.scopes:
            raise AccessDenied(403, "The token lacks the com.intuit.quickbooks.accounting scope")
        return grant

    def connected_apps(self, realm_id: str, now: float) -> set[str]:
        return {g.client_id for g in self.grants.values() if g.realm_id == realm_id and g.live(now)}
