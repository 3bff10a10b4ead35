"""Xero's identity server state: apps, consents, token sets and connections.

A Xero access token acts for a *user* of an *app*, not for one organisation: the user's
connections (one per organisation they connected to the app, accumulating across consents)
say which tenants it reaches.  Each consent has an ``authEventId``, carried by the
connections it made and by the token's ``authentication_event_id`` claim.

A *grant* is one token set (one refresh-token family).  Its refresh token rotates on every
refresh; the superseded value keeps working for ``refresh_grace`` seconds (for a client that
lost the response), and a refresh token unused for ``refresh_idle_ttl`` expires.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from emulators.common.oauth import ClientRegistry, OAuthError
from emulators.xero.config import AppConfig, EmulatorConfig
from emulators.xero.dates import connection_date

BROAD_SCOPES: Final = frozenset(
    {
        "accounting.transactions",
        "accounting.transactions.read",
        "accounting.contacts",
        "accounting.contacts.read",
        "accounting.settings",
        "accounting.settings.read",
        "accounting.reports.read",
        "accounting.journals.read",
        "accounting.attachments",
        "accounting.attachments.read",
        "accounting.budgets.read",
    }
)
GRANULAR_SCOPES: Final = frozenset(
    {
        "accounting.invoices",
        "accounting.invoices.read",
        "accounting.payments",
        "accounting.payments.read",
        "accounting.banktransactions",
        "accounting.banktransactions.read",
        "accounting.manualjournals",
        "accounting.manualjournals.read",
        "accounting.reports.aged.read",
        "accounting.contacts",
        "accounting.contacts.read",
        "accounting.settings",
        "accounting.settings.read",
    }
)
IDENTITY_SCOPES: Final = frozenset({"openid", "profile", "email", "offline_access"})
ISSUER: Final = "https://identity.xero.com"


class AccessDenied(Exception):
    """An API call refused before it reaches the books (401 or 403)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def scope_allowed(scope: str, style: str) -> bool:
    if scope in IDENTITY_SCOPES:
        return True
    if style == "granular":
        return scope in GRANULAR_SCOPES
    if style == "broad":
        return scope in BROAD_SCOPES
    return scope in BROAD_SCOPES or scope in GRANULAR_SCOPES


@dataclass(slots=True)
class App:
    client_id: str
    client_secret: str
    redirect_uris: list[str]
    webhook_url: str | None
    webhook_key: str
    webhook_categories: tuple[str, ...]
    webhook_status: str
    scope_style: str
    name: str

    @classmethod
    def from_config(cls, cfg: AppConfig) -> App:
        return cls(
            cfg.client_id,
            cfg.client_secret,
            list(cfg.redirect_uris),
            cfg.webhook_url,
            cfg.webhook_key,
            tuple(cfg.webhook_categories),
            cfg.webhook_status,
            cfg.scope_style,
            cfg.name,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "redirect_uris": self.redirect_uris,
            "webhook_url": self.webhook_url,
            "webhook_key": self.webhook_key,
            "webhook_categories": list(self.webhook_categories),
            "webhook_status": self.webhook_status,
            "scope_style": self.scope_style,
            "name": self.name,
        }


@dataclass(slots=True)
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: str
    tenant_ids: tuple[str, ...]
    scopes: tuple[str, ...]
    auth_event_id: str
    expires_at: float
    code_challenge: str | None = None
    used: bool = False
    grant_id: str | None = None


@dataclass(slots=True)
class Connection:
    id: str
    client_id: str
    user_id: str
    tenant_id: str
    tenant_name: str
    auth_event_id: str
    created: float
    updated: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "authEventId": self.auth_event_id,
            "tenantId": self.tenant_id,
            "tenantType": "ORGANISATION",
            "tenantName": self.tenant_name,
            "createdDateUtc": connection_date(self.created),
            "updatedDateUtc": connection_date(self.updated),
        }


@dataclass(slots=True)
class RefreshToken:
    value: str
    grant_id: str
    expires_at: float  # idle expiry
    superseded_at: float | None = None


@dataclass(slots=True)
class Grant:
    id: str
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    auth_event_id: str
    refresh_token: str | None
    revoked: bool = False
    revoked_reason: str = ""
    refreshes: int = 0
    grace_refreshes: int = 0
    access_tokens: dict[str, float] = field(default_factory=dict)  # token -> expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client_id": self.client_id,
            "user_id": self.user_id,
            "scopes": list(self.scopes),
            "auth_event_id": self.auth_event_id,
            "revoked": self.revoked,
            "revoked_reason": self.revoked_reason,
            "refreshes": self.refreshes,
            "grace_refreshes": self.grace_refreshes,
        }


def pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class OAuthState(ClientRegistry[App]):
    invalid_client_status = 400
    describe_errors = False

    def __init__(self, config: EmulatorConfig) -> None:
        super().__init__()
        self.config = config
        self.codes: dict[str, AuthCode] = {}
        self.grants: dict[str, Grant] = {}
        self.connections: dict[str, Connection] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self._access_index: dict[str, str] = {}
        self.signing_key = secrets.token_bytes(32)
        self._grant_seq = 0

    # -- consent --------------------------------------------------------------------------

    def issue_code(
        self,
        app: App,
        redirect_uri: str,
        user_id: str,
        tenant_ids: tuple[str, ...],
        scopes: tuple[str, ...],
        now: float,
        code_challenge: str | None,
    ) -> str:
        code = secrets.token_urlsafe(32)
        self.codes[code] = AuthCode(
            code,
            app.client_id,
            redirect_uri,
            user_id,
            tenant_ids,
            scopes,
            str(uuid.uuid4()),
            now + self.config.auth_code_ttl,
            code_challenge,
        )
        return code

    def exchange_code(
        self,
        app: App,
        code: str,
        redirect_uri: str,
        verifier: str | None,
        now: float,
        tenant_names: dict[str, str],
    ) -> dict[str, Any]:
        entry = self.codes.get(code)
        if entry is None or entry.client_id != app.client_id:
            raise OAuthError(400, "invalid_grant")
        if entry.used:
            if entry.grant_id is not None:
                self.revoke_grant(self.grants[entry.grant_id], "authorization code replayed")
            raise OAuthError(400, "invalid_grant")
        if now >= entry.expires_at or redirect_uri != entry.redirect_uri:
            raise OAuthError(400, "invalid_grant")
        if entry.code_challenge is not None and (
            verifier is None or pkce_challenge(verifier) != entry.code_challenge
        ):
            raise OAuthError(400, "invalid_grant", "code_verifier does not match")
        entry.used = True
        # The consent's organisations become (or refresh) the user's connections to the app.
        for tenant_id in entry.tenant_ids:
            self._connect(
                app.client_id,
                entry.user_id,
                tenant_id,
                tenant_names[tenant_id],
                entry.auth_event_id,
                now,
            )
        self._grant_seq += 1
        grant = Grant(
            id=f"g{self._grant_seq}",
            client_id=app.client_id,
            user_id=entry.user_id,
            scopes=entry.scopes,
            auth_event_id=entry.auth_event_id,
            refresh_token=None,
        )
        entry.grant_id = grant.id
        self.grants[grant.id] = grant
        if "offline_access" in grant.scopes:
            self._new_refresh_token(grant, now)
        return self._token_response(grant, now)

    def _connect(
        self,
        client_id: str,
        user_id: str,
        tenant_id: str,
        tenant_name: str,
        auth_event_id: str,
        now: float,
    ) -> None:
        for connection in self.connections.values():
            if (connection.client_id, connection.user_id, connection.tenant_id) == (
                client_id,
                user_id,
                tenant_id,
            ):
                connection.auth_event_id = auth_event_id
                connection.updated = now
                return
        connection = Connection(
            str(uuid.uuid4()), client_id, user_id, tenant_id, tenant_name, auth_event_id, now, now
        )
        self.connections[connection.id] = connection

    # -- tokens ---------------------------------------------------------------------------

    def _new_refresh_token(self, grant: Grant, now: float) -> None:
        value = secrets.token_hex(32)
        self.refresh_tokens[value] = RefreshToken(
            value, grant.id, now + self.config.refresh_idle_ttl
        )
        grant.refresh_token = value

    def _access_token(self, grant: Grant, now: float) -> str:
        claims = {
            "nbf": int(now),
            "exp": int(now) + self.config.access_token_ttl,
            "iss": ISSUER,
            "aud": f"{ISSUER}/resources",
            "client_id": grant.client_id,
            "sub": grant.user_id,
            "auth_time": int(now),
            "xero_userid": grant.user_id,
            "global_session_id": grant.id,
            "sid": grant.id,
            "jti": secrets.token_hex(16),
            "authentication_event_id": grant.auth_event_id,
            "scope": list(grant.scopes),
        }
        return jwt.encode(claims, self.signing_key, algorithm="HS256")

    def _token_response(self, grant: Grant, now: float) -> dict[str, Any]:
        access = self._access_token(grant, now)
        grant.access_tokens[access] = now + self.config.access_token_ttl
        self._access_index[access] = grant.id
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": self.config.access_token_ttl,
            "token_type": "Bearer",
            "scope": " ".join(grant.scopes),
        }
        if grant.refresh_token is not None:
            body["refresh_token"] = grant.refresh_token
        if "openid" in grant.scopes:
            body["id_token"] = jwt.encode(
                {
                    "iss": ISSUER,
                    "aud": grant.client_id,
                    "sub": grant.user_id,
                    "exp": int(now) + 300,
                    "iat": int(now),
                    "xero_userid": grant.user_id,
                    "email": f"{grant.user_id}@example.org",
                },
                self.signing_key,
                algorithm="HS256",
            )
        return body

    def refresh(self, app: App, value: str, now: float) -> dict[str, Any]:
        token = self.refresh_tokens.get(value)
        grant = self.grants.get(token.grant_id) if token is not None else None
        if token is None or grant is None or grant.client_id != app.client_id:
            raise OAuthError(400, "invalid_grant")
        if grant.revoked or now >= token.expires_at:
            raise OAuthError(400, "invalid_grant")
        if token.superseded_at is not None:
            if now >= token.superseded_at + self.config.refresh_grace:
                raise OAuthError(400, "invalid_grant")
            grant.grace_refreshes += 1
        if not self.config.refresh_without_connections and not self.user_connections(
            grant.client_id, grant.user_id
        ):
            raise OAuthError(400, "invalid_grant")
        # Rotate: the current value is superseded now (a grace-period retry leaves the
        # value it used superseded as it was).
        current = self.refresh_tokens.get(grant.refresh_token or "")
        if current is not None and current.superseded_at is None:
            current.superseded_at = now
        grant.refreshes += 1
        self._new_refresh_token(grant, now)
        return self._token_response(grant, now)

    def revoke_token(self, app: App, value: str) -> None:
        """Revoking a refresh token ends its grant and removes all the user's connections
        to the app (RFC 7009: an unknown token is not an error)."""
        token = self.refresh_tokens.get(value)
        grant = self.grants.get(token.grant_id) if token is not None else None
        if grant is None or grant.client_id != app.client_id:
            return
        self.revoke_grant(grant, "revoked by the app")
        for connection in self.user_connections(grant.client_id, grant.user_id):
            del self.connections[connection.id]
        for other in self.grants.values():
            if other.client_id == grant.client_id and other.user_id == grant.user_id:
                self.revoke_grant(other, "revoked by the app")

    def revoke_grant(self, grant: Grant, reason: str) -> None:
        grant.revoked = True
        grant.revoked_reason = grant.revoked_reason or reason

    # -- connections ------------------------------------------------------------------------

    def user_connections(self, client_id: str, user_id: str) -> list[Connection]:
        return [
            c
            for c in self.connections.values()
            if c.client_id == client_id and c.user_id == user_id
        ]

    def connected_apps(self, tenant_id: str) -> set[str]:
        live_users = {(g.client_id, g.user_id) for g in self.grants.values() if not g.revoked}
        return {
            c.client_id
            for c in self.connections.values()
            if c.tenant_id == tenant_id and (c.client_id, c.user_id) in live_users
        }

    def disconnect(self, tenant_id: str, client_id: str | None) -> list[Connection]:
        """The user disconnects the app in Xero (Settings, Connected Apps)."""
        ended = [
            c
            for c in self.connections.values()
            if c.tenant_id == tenant_id and (client_id is None or c.client_id == client_id)
        ]
        for connection in ended:
            del self.connections[connection.id]
        return ended

    # -- API access -------------------------------------------------------------------------

    def grant_for(self, header: str | None, now: float) -> Grant:
        if not header or not header.lower().startswith("bearer "):
            raise AccessDenied(401, "AuthenticationUnsuccessful")
        token = header[7:].strip()
        grant_id = self._access_index.get(token)
        grant = self.grants.get(grant_id) if grant_id is not None else None
        if grant is None or grant.revoked:
            raise AccessDenied(401, "AuthenticationUnsuccessful")
        if now >= grant.access_tokens[token]:
            raise AccessDenied(401, "TokenExpired")
        return grant

    def connection_for(self, grant: Grant, tenant_id: str) -> Connection | None:
        for connection in self.user_connections(grant.client_id, grant.user_id):
            if connection.tenant_id == tenant_id:
                return connection
        return None
