"""Intuit's OAuth endpoints: discovery, the consent page, token, revoke, JWKS, userinfo."""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from typing import Any, Final

from aiohttp import web

from emulators.common.http import dumps, raw_json
from emulators.common.oauth import (
    OAuthError,
    PageError,
    authorization_request,
    error_page,
    oauth_error,
    redirect,
    required_field,
    token_endpoint,
    token_faults,
)
from emulators.qbo.config import ACCOUNTING_SCOPE, PAYMENT_SCOPE
from emulators.qbo.keys import STATE_KEY
from emulators.qbo.oauth import KNOWN_SCOPES, App
from emulators.qbo.state import EmulatorState

DISCOVERY_PATHS: Final = (
    "/.well-known/openid_configuration",
    "/.well-known/openid_configuration/",
    "/.well-known/openid_sandbox_configuration",
    "/.well-known/openid_sandbox_configuration/",
    "/.well-known/openid-configuration",
    "/.well-known/openid-sandbox-configuration",
)


def base_url(request: web.Request) -> str:
    configured = request.app[STATE_KEY].config.public_base_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


async def discovery(request: web.Request) -> web.Response:
    base = base_url(request)
    doc = {
        "issuer": f"{base}/op/v1",
        "authorization_endpoint": f"{base}/connect/oauth2",
        "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
        "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
        "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
        "jwks_uri": f"{base}/op/v1/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "address", "phone"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
    }
    return raw_json(dumps(doc))


# -- the consent page -----------------------------------------------------------------------


def _validate(state: EmulatorState, params: Mapping[str, str]) -> tuple[App, str, tuple[str, ...]]:
    """Check the authorization request; raise PageError or HTTPFound (error redirect)."""
    return authorization_request(state.oauth.apps, params, lambda _app, s: s in KNOWN_SCOPES)


def _needs_company(scopes: tuple[str, ...]) -> bool:
    return ACCOUNTING_SCOPE in scopes or PAYMENT_SCOPE in scopes


def _decide(
    state: EmulatorState,
    app: App,
    redirect_uri: str,
    scopes: tuple[str, ...],
    params: Mapping[str, str],
    decision: str,
    realm_id: str | None,
) -> web.HTTPFound:
    oauth_state = params.get("state")
    if decision == "deny":
        return redirect(redirect_uri, {"error": "access_denied"}, oauth_state)
    if decision != "allow":
        raise PageError(f"Unknown decision {decision!r}: use allow or deny.")
    if _needs_company(scopes):
        if not realm_id and len(state.companies) == 1:
            realm_id = next(iter(state.companies))
        if not realm_id or realm_id not in state.companies:
            raise PageError(f"Pick a company: {realm_id!r} is not a company here.")
    else:
        realm_id = None
    code = state.oauth.issue_code(app, redirect_uri, realm_id, scopes, state.clock.time())
    out = {"code": code}
    if realm_id is not None:
        out["realmId"] = realm_id
    return redirect(redirect_uri, out, oauth_state)


# Connect comes first in the markup so that pressing Enter connects; row-reverse still shows
# it on the right, after Cancel.
_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connect to {app_name} · Intuit (emulator)</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f4f5f8; margin: 0; }}
main {{ max-width: 30rem; margin: 4rem auto; background: #fff; padding: 2rem;
        border-radius: .5rem; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
.note {{ color: #555; font-size: .9rem; }}
label {{ display: block; margin: 1.2rem 0 .3rem; font-weight: 600; }}
select {{ width: 100%; padding: .4rem; font-size: 1rem; }}
ul {{ padding-left: 1.2rem; }}
.buttons {{ display: flex; flex-direction: row-reverse; gap: 1rem; margin-top: 1.5rem; }}
button {{ font-size: 1rem; padding: .5rem 1.3rem; border-radius: .3rem; cursor: pointer; }}
button.connect {{ background: #2ca01c; color: #fff; border: none; }}
button.cancel {{ background: #fff; border: 1px solid #8d9096; }}
.error {{ color: #b00020; }}
</style></head>
<body><main>
<h1>{app_name} wants to connect to your QuickBooks company</h1>
<p class="note">Intuit emulator: no password is asked for; pick a company and connect.</p>
<p>{app_name} will be able to:</p>
<ul>{scope_items}</ul>
<form method="post" action="/connect/oauth2">
{hidden}
{picker}
<div class="buttons">
{connect}
<button class="cancel" type="submit" name="decision" value="deny">Cancel</button>
</div>
</form>
</main></body></html>
"""

_SCOPE_TEXT: Final = {
    ACCOUNTING_SCOPE: "Read and write your accounting data (customers, invoices, payments)",
    PAYMENT_SCOPE: "Process payments",
    "openid": "Sign you in with your Intuit account",
    "email": "See your email address",
    "profile": "See your name",
    "phone": "See your phone number",
    "address": "See your address",
}


def render_page(state: EmulatorState, app: App, params: Mapping[str, str]) -> str:
    scopes = tuple(params.get("scope", "").split())
    hidden = "\n".join(
        f'<input type="hidden" name="{name}" value="{escape(params[name])}">'
        for name in ("client_id", "redirect_uri", "response_type", "scope", "state")
        if name in params
    )
    connect = '<button class="connect" type="submit" name="decision" value="allow">Connect</button>'
    if not _needs_company(scopes):
        picker = ""
    elif not state.companies:
        picker = '<p class="error">There is no QuickBooks company to connect.</p>'
        connect = ""
    else:
        options = "\n".join(
            f'<option value="{escape(c.realm_id)}">{escape(c.name)} ({escape(c.realm_id)})</option>'
            for c in state.companies.values()
        )
        picker = (
            '<label for="realm_id">Company</label>\n'
            f'<select id="realm_id" name="realm_id">\n{options}\n</select>'
        )
    scope_items = "".join(f"<li>{escape(_SCOPE_TEXT.get(s, s))}</li>" for s in scopes)
    return _PAGE.format(
        app_name=escape(app.name),
        scope_items=scope_items,
        hidden=hidden,
        picker=picker,
        connect=connect,
    )


def _error_page(message: str) -> web.Response:
    return error_page(
        "Authorization error · Intuit (emulator)", "We can't connect this app", message
    )


async def authorize_page(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    params = request.query
    try:
        app, redirect_uri, scopes = _validate(state, params)
        decision = params.get("emulator_decision")
        if decision is not None:
            raise _decide(
                state, app, redirect_uri, scopes, params, decision, params.get("emulator_realm")
            )
    except PageError as exc:
        return _error_page(str(exc))
    return web.Response(text=render_page(state, app, params), content_type="text/html")


async def authorize_submit(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    form = await request.post()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        app, redirect_uri, scopes = _validate(state, params)
        raise _decide(
            state,
            app,
            redirect_uri,
            scopes,
            params,
            params.get("decision", ""),
            params.get("realm_id"),
        )
    except PageError as exc:
        return _error_page(str(exc))


# -- token and revoke ---------------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    oauth = state.oauth
    hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"

    def exchange(app: App, form: Mapping[str, Any], now: float) -> dict[str, Any]:
        code, redirect_uri = required_field(form, "code"), required_field(form, "redirect_uri")
        return oauth.exchange_code(app, code, redirect_uri, now, hard_expiry=hard)

    def refresh(app: App, form: Mapping[str, Any], now: float) -> dict[str, Any]:
        return oauth.refresh(app, required_field(form, "refresh_token"), now, hard_expiry=hard)

    grants = {"authorization_code": exchange, "refresh_token": refresh}
    return await token_endpoint(request, oauth, state.faults, state.clock.time(), grants)


async def revoke(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.oauth.revoke_calls += 1
    fault = await token_faults(state.faults)  # the "token" fault scope covers revocation too
    if fault is not None:
        return fault
    raw = await request.read()
    token_value: Any = None
    form: dict[str, Any] = {}
    if request.content_type == "application/json":
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            return oauth_error(OAuthError(400, "invalid_request", "The body is not JSON"))
        if isinstance(payload, dict):
            token_value = payload.get("token")
    else:
        form = {k: v for k, v in (await request.post()).items()}
        token_value = form.get("token")
    try:
        app = state.oauth.authenticate(request, form)
        if not isinstance(token_value, str) or not token_value:
            raise OAuthError(400, "invalid_request", "token is required")
        state.oauth.revoke_token(app, token_value)
    except OAuthError as exc:
        return oauth_error(exc, state.oauth.basic_realm)
    return web.Response(status=200)


async def jwks(request: web.Request) -> web.Response:
    return raw_json(b'{"keys":[]}')


async def userinfo(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    header = request.headers.get("Authorization", "")
    token_value = header[7:].strip() if header.lower().startswith("bearer ") else ""
    grant = state.oauth.grant_for_access_token(token_value, state.clock.time())
    if grant is None:
        raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    if "openid" not in grant.scopes:
        return raw_json(dumps({"error": "insufficient_scope"}), 403)
    return raw_json(
        dumps(
            {
                "sub": f"emulator-user-{grant.client_id}",
                "email": "owner@example.com",
                "emailVerified": True,
                "givenName": "Emulated",
                "familyName": "Owner",
            }
        )
    )


def add_routes(app: web.Application) -> None:
    for path in DISCOVERY_PATHS:
        app.router.add_get(path, discovery)
    app.router.add_get("/connect/oauth2", authorize_page)
    app.router.add_post("/connect/oauth2", authorize_submit)
    app.router.add_post("/oauth2/v1/tokens/bearer", token)
    app.router.add_post("/v2/oauth2/tokens/revoke", revoke)
    app.router.add_post("/oauth2/v1/tokens/revoke", revoke)
    app.router.add_get("/op/v1/jwks", jwks)
    app.router.add_get("/v1/openid_connect/userinfo", userinfo)
