"""OAuth 2.0 pieces both identity servers share: the client's credentials, RFC 6749
errors, redirects back to the app, the error page, token-endpoint faults."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
from collections import Counter
from collections.abc import Callable, Mapping
from html import escape
from typing import Any, Final, Generic, Protocol, TypeVar

from aiohttp import web
from yarl import URL

from emulators.common.faults import FaultBox
from emulators.common.http import dumps, raw_json


class MalformedCredentials(ValueError):
    """An ``Authorization: Basic`` header that is not base64 ``id:secret``."""


def client_credentials(request: web.Request, form: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(client_id, client_secret)`` from HTTP Basic (``client_secret_basic``) or, failing
    that, the form (``client_secret_post``); None when neither is there."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise MalformedCredentials("Malformed Basic credentials") from exc
        client_id, sep, secret = decoded.partition(":")
        if not sep:
            raise MalformedCredentials("Malformed Basic credentials")
        return client_id, secret
    posted_id, posted_secret = form.get("client_id"), form.get("client_secret")
    if isinstance(posted_id, str) and isinstance(posted_secret, str):
        return posted_id, posted_secret
    return None


class OAuthError(Exception):
    """An RFC 6749 error response from a token or revocation endpoint."""

    def __init__(self, status: int, error: str, description: str = "") -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        out = {"error": self.error}
        if self.description:
            out["error_description"] = self.description
        return out


NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def redirect(redirect_uri: str, params: dict[str, str], state: str | None) -> web.HTTPFound:
    """Back to the app with ``params`` (and the ``state`` it sent, if any)."""
    if state is not None:
        params["state"] = state
    return web.HTTPFound(str(URL(redirect_uri).update_query(params)))


def required_field(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    if not isinstance(value, str) or not value:
        raise OAuthError(400, "invalid_request", f"{name} is required")
    return value


def error_page(title: str, heading: str, message: str) -> web.Response:
    """The page an authorization request that cannot be redirected back ends on; ``title``
    and ``heading`` are the emulator's own text, ``message`` is escaped."""
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body><main>"
        f"<h1>{heading}</h1><p class='error'>{escape(message)}</p>"
        "</main></body></html>"
    )
    return web.Response(text=html, status=400, content_type="text/html")


async def token_faults(faults: FaultBox[Any]) -> web.Response | None:
    """Injected latency and errors for the token and revocation endpoints (fault scope
    ``"token"``)."""
    if not faults.applies("token", None):
        return None
    delay = faults.latency()
    if delay:
        await asyncio.sleep(delay)
    if faults.roll(faults.faults.error_rate):
        faults.count("token_error")
        body = {"error": "server_error", "error_description": "injected fault"}
        return raw_json(dumps(body), faults.faults.error_status, dict(NO_STORE))
    return None


class Client(Protocol):
    """A registered app, as far as client authentication goes."""

    @property
    def client_id(self) -> str: ...

    @property
    def client_secret(self) -> str: ...


A = TypeVar("A", bound=Client)
Grants = Mapping[str, Callable[[A, Mapping[str, Any], float], dict[str, Any]]]


class ClientRegistry(Generic[A]):
    """The registered apps, client authentication, and counts of token-endpoint calls."""

    # Intuit answers a failed client authentication with 401 and a description; Xero with
    # 400 and the bare error.
    invalid_client_status = 401
    describe_errors = True
    basic_realm = "oauth"  # in WWW-Authenticate on a 401

    def __init__(self) -> None:
        self.apps: dict[str, A] = {}
        self.token_calls: Counter[str] = Counter()  # grant_type -> calls (all outcomes)
        self.token_calls_by_client: Counter[tuple[str, str]] = Counter()
        self.revoke_calls = 0

    def register(self, app: A) -> A:
        self.apps[app.client_id] = app
        return app

    def _invalid_client(self, description: str) -> OAuthError:
        return OAuthError(
            self.invalid_client_status,
            "invalid_client",
            description if self.describe_errors else "",
        )

    def authenticate_client(self, client_id: str, client_secret: str) -> A:
        app = self.apps.get(client_id)
        if app is None or not hmac.compare_digest(app.client_secret, client_secret):
            raise self._invalid_client("Client authentication failed")
        return app

    def authenticate(self, request: web.Request, form: Mapping[str, Any]) -> A:
        """The app the request authenticates as (HTTP Basic or the form)."""
        try:
            credentials = client_credentials(request, form)
        except MalformedCredentials as exc:
            raise self._invalid_client(str(exc)) from exc
        if credentials is None:
            raise self._invalid_client("Client authentication is required")
        return self.authenticate_client(*credentials)

    def stats(self) -> dict[str, Any]:
        by_client: dict[str, dict[str, int]] = {}
        for (client_id, grant_type), n in self.token_calls_by_client.items():
            by_client.setdefault(client_id, {})[grant_type] = n
        return {
            "token_calls": dict(self.token_calls),
            "token_calls_by_client": by_client,
            "revoke_calls": self.revoke_calls,
        }


def oauth_error(exc: OAuthError, realm: str = "oauth") -> web.Response:
    headers = dict(NO_STORE)
    if exc.status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{realm}"'
    return raw_json(dumps(exc.body()), exc.status, headers)


async def token_endpoint(
    request: web.Request,
    registry: ClientRegistry[A],
    faults: FaultBox[Any],
    now: float,
    grants: Grants[A],
) -> web.Response:
    """``POST`` to a token endpoint: counts the call, injects token faults, authenticates
    the client, and answers with what ``grants[grant_type](app, form, now)`` returns."""
    form = await request.post()
    grant_type = form.get("grant_type")
    grant_name = grant_type if isinstance(grant_type, str) and grant_type else "(missing)"
    registry.token_calls[grant_name] += 1
    injected = await token_faults(faults)
    if injected is not None:
        return injected
    try:
        app = registry.authenticate(request, form)
        registry.token_calls_by_client[(app.client_id, grant_name)] += 1
        grant = grants.get(grant_name)
        if grant is None:
            raise OAuthError(
                400, "unsupported_grant_type", f"grant_type {grant_name} is not supported"
            )
        body = grant(app, form, now)
    except OAuthError as exc:
        return oauth_error(exc, registry.basic_realm)
    return raw_json(dumps(body), 200, dict(NO_STORE))


class PageError(Exception):
    """An authorization request that can't be redirected back (unknown client or
    redirect_uri): it ends on the error page."""


class RedirectingClient(Client, Protocol):
    @property
    def redirect_uris(self) -> list[str]: ...


R = TypeVar("R", bound=RedirectingClient)


def authorization_request(
    apps: Mapping[str, R], params: Mapping[str, str], scope_ok: Callable[[R, str], bool]
) -> tuple[R, str, tuple[str, ...]]:
    """(app, redirect_uri, scopes) of a valid request; raises :class:`PageError` for an
    unknown client or redirect URI, else redirects back with the RFC 6749 error."""
    client_id = params.get("client_id", "")
    app = apps.get(client_id)
    if app is None:
        raise PageError(f"Unknown client_id {client_id!r}: the app is not registered.")
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in app.redirect_uris:
        raise PageError(
            f"The redirect_uri {redirect_uri!r} is not one of the app's registered redirect URIs."
        )
    oauth_state = params.get("state")
    if params.get("response_type") != "code":
        raise redirect(redirect_uri, {"error": "unsupported_response_type"}, oauth_state)
    scopes = tuple(params.get("scope", "").split())
    if not scopes or not all(scope_ok(app, s) for s in scopes):
        raise redirect(redirect_uri, {"error": "invalid_scope"}, oauth_state)
    return app, redirect_uri, scopes
