"""Xero's identity endpoints: the consent page, token, revocation, ``/connections``.

Xero serves these from three hosts (``login.xero.com``, ``identity.xero.com``,
``api.xero.com``); the emulator serves them all from one, at the same paths.
"""

from __future__ import annotations

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
from emulators.xero.keys import STATE_KEY
from emulators.xero.oauth import AccessDenied, App, scope_allowed
from emulators.xero.responses import problem
from emulators.xero.state import EmulatorState

AUTHORIZE_PATH: Final = "/identity/connect/authorize"
TOKEN_PATH: Final = "/connect/token"  # noqa: S105 (a path)
REVOKE_PATH: Final = "/connect/revocation"
DEFAULT_USER: Final = "xero-user-1"


def _validate(state: EmulatorState, params: Mapping[str, str]) -> tuple[App, str, tuple[str, ...]]:
    app, redirect_uri, scopes = authorization_request(
        state.oauth.apps, params, lambda app, s: scope_allowed(s, app.scope_style)
    )
    method = params.get("code_challenge_method")
    if params.get("code_challenge") and method not in (None, "S256"):
        raise redirect(redirect_uri, {"error": "invalid_request"}, params.get("state"))
    return app, redirect_uri, scopes


def _needs_tenant(scopes: tuple[str, ...]) -> bool:
    return any(s.startswith("accounting.") for s in scopes)


def _decide(
    state: EmulatorState,
    app: App,
    redirect_uri: str,
    scopes: tuple[str, ...],
    params: Mapping[str, str],
    decision: str,
    tenants: list[str],
) -> web.HTTPFound:
    oauth_state = params.get("state")
    if decision == "deny":
        return redirect(redirect_uri, {"error": "access_denied"}, oauth_state)
    if decision != "allow":
        raise PageError(f"Unknown decision {decision!r}: use allow or deny.")
    chosen: tuple[str, ...] = ()
    if _needs_tenant(scopes):
        if not tenants and len(state.organisations) == 1:
            tenants = list(state.organisations)
        unknown = [t for t in tenants if t not in state.organisations]
        if not tenants or unknown:
            raise PageError(f"Choose an organisation: {unknown or 'none'} chosen.")
        if len(tenants) > 1 and not state.config.multi_org_consent:
            raise PageError("This app can connect one organisation at a time.")
        chosen = tuple(dict.fromkeys(tenants))
    user = params.get("emulator_user") or params.get("user") or DEFAULT_USER
    code = state.oauth.issue_code(
        app,
        redirect_uri,
        user,
        chosen,
        scopes,
        state.clock.time(),
        params.get("code_challenge") or None,
    )
    return redirect(redirect_uri, {"code": code, "scope": " ".join(scopes)}, oauth_state)


_PAGE: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Xero | Authorise {app_name} (emulator)</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #f2f4f7; margin: 0; }}
main {{ max-width: 32rem; margin: 4rem auto; background: #fff; padding: 2rem;
        border-radius: .5rem; box-shadow: 0 1px 4px rgba(0,0,0,.15); }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
.note {{ color: #555; font-size: .9rem; }}
fieldset {{ border: 1px solid #ccd; border-radius: .3rem; margin: 1rem 0; }}
label {{ display: block; margin: .3rem 0; }}
.buttons {{ display: flex; flex-direction: row-reverse; gap: 1rem; margin-top: 1.5rem; }}
button {{ font-size: 1rem; padding: .5rem 1.3rem; border-radius: .3rem; cursor: pointer; }}
button.allow {{ background: #13b5ea; color: #fff; border: none; }}
button.cancel {{ background: #fff; border: 1px solid #8d9096; }}
.error {{ color: #b00020; }}
</style></head>
<body><main>
<h1>{app_name} wants access to your Xero organisations</h1>
<p class="note">Xero emulator: no sign-in is asked for; choose the organisations and allow.</p>
<p>{app_name} will be able to:</p>
<ul>{scope_items}</ul>
<form method="post" action="{action}">
{hidden}
{picker}
<div class="buttons">
{allow}
<button class="cancel" type="submit" name="decision" value="deny">Cancel</button>
</div>
</form>
</main></body></html>
"""


def render_page(state: EmulatorState, app: App, params: Mapping[str, str]) -> str:
    scopes = tuple(params.get("scope", "").split())
    names = (
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    )
    hidden = "\n".join(
        f'<input type="hidden" name="{name}" value="{escape(params[name])}">'
        for name in names
        if name in params
    )
    allow = (
        '<button class="allow" type="submit" name="decision" value="allow">Allow access</button>'
    )
    if not _needs_tenant(scopes):
        picker = ""
    elif not state.organisations:
        picker = '<p class="error">There is no Xero organisation to connect.</p>'
        allow = ""
    else:
        kind = "checkbox" if state.config.multi_org_consent else "radio"
        options = "\n".join(
            f'<label><input type="{kind}" name="tenant" value="{escape(t)}"'
            f"{' checked' if n == 0 else ''}> {escape(org.name)}</label>"
            for n, (t, org) in enumerate(state.organisations.items())
        )
        picker = f"<fieldset><legend>Organisations</legend>\n{options}\n</fieldset>"
    return _PAGE.format(
        app_name=escape(app.name),
        scope_items="".join(f"<li>{escape(s)}</li>" for s in scopes),
        action=AUTHORIZE_PATH,
        hidden=hidden,
        picker=picker,
        allow=allow,
    )


def _error_page(message: str) -> web.Response:
    return error_page("Xero | Error (emulator)", "Sorry, something went wrong", message)


async def authorize_page(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    params = request.query
    try:
        app, redirect_uri, scopes = _validate(state, params)
        decision = params.get("emulator_decision")
        if decision is not None:
            tenants = [t for t in params.get("emulator_tenants", "").split(",") if t]
            raise _decide(state, app, redirect_uri, scopes, params, decision, tenants)
    except PageError as exc:
        return _error_page(str(exc))
    return web.Response(text=render_page(state, app, params), content_type="text/html")


async def authorize_submit(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    form = await request.post()
    params = {k: v for k, v in form.items() if isinstance(v, str)}
    tenants = [v for v in form.getall("tenant", []) if isinstance(v, str)]
    try:
        app, redirect_uri, scopes = _validate(state, params)
        raise _decide(state, app, redirect_uri, scopes, params, params.get("decision", ""), tenants)
    except PageError as exc:
        return _error_page(str(exc))


# -- token and revocation ---------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    oauth = state.oauth
    names = {t: org.name for t, org in state.organisations.items()}

    def exchange(app: App, form: Mapping[str, Any], now: float) -> dict[str, Any]:
        verifier = form.get("code_verifier")
        return oauth.exchange_code(
            app,
            required_field(form, "code"),
            required_field(form, "redirect_uri"),
            verifier if isinstance(verifier, str) else None,
            now,
            names,
        )

    def refresh(app: App, form: Mapping[str, Any], now: float) -> dict[str, Any]:
        return oauth.refresh(app, required_field(form, "refresh_token"), now)

    grants = {"authorization_code": exchange, "refresh_token": refresh}
    return await token_endpoint(request, oauth, state.faults, state.clock.time(), grants)


async def revoke(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    state.oauth.revoke_calls += 1
    injected = await token_faults(state.faults)
    if injected is not None:
        return injected
    form = await request.post()
    try:
        app = state.oauth.authenticate(request, form)
        state.oauth.revoke_token(app, required_field(form, "token"))
    except OAuthError as exc:
        return oauth_error(exc)
    return web.Response(status=200)


# -- connections (tenantless: only the app-wide minute limit applies) ----------------------


async def _connections_gate(request: web.Request) -> tuple[EmulatorState, str, str, dict[str, str]]:
    """(state, client id, user id, limit headers) for a live bearer token, else raise."""
    state = request.app[STATE_KEY]
    now = state.clock.time()
    try:
        grant = state.oauth.grant_for(request.headers.get("Authorization"), now)
    except AccessDenied as exc:
        raise web.HTTPUnauthorized(
            body=dumps(
                {
                    "Type": None,
                    "Title": "Unauthorized",
                    "Status": 401,
                    "Detail": exc.detail,
                    "Extensions": {},
                }
            ),
            content_type="application/json",
        ) from exc
    limits = state.limits(None)
    verdict = state.limiter.admit(grant.client_id, None, limits, now)
    headers = state.limiter.headers(grant.client_id, None, limits, now)
    if not verdict.ok:
        state.throttled[verdict.problem or "?"] += 1
        headers["X-Rate-Limit-Problem"] = verdict.problem or ""
        if verdict.retry_after is not None:
            headers["Retry-After"] = str(verdict.retry_after)
        raise web.HTTPTooManyRequests(headers=headers)
    return state, grant.client_id, grant.user_id, headers


async def list_connections(request: web.Request) -> web.Response:
    state, client_id, user_id, headers = await _connections_gate(request)
    event = request.query.get("authEventId")
    connections = [
        c.to_json()
        for c in sorted(state.oauth.user_connections(client_id, user_id), key=lambda c: c.created)
        if event is None or c.auth_event_id == event
    ]
    return raw_json(dumps(connections), 200, headers)


async def delete_connection(request: web.Request) -> web.Response:
    state, client_id, user_id, headers = await _connections_gate(request)
    connection = state.oauth.connections.get(request.match_info["id"])
    if connection is None or (connection.client_id, connection.user_id) != (client_id, user_id):
        response = problem(404, "NotFound", "Connection not found")
        response.headers.update(headers)
        return response
    del state.oauth.connections[connection.id]
    return web.Response(status=204, headers=headers)


def add_routes(app: web.Application) -> None:
    app.router.add_get(AUTHORIZE_PATH, authorize_page)
    app.router.add_post(AUTHORIZE_PATH, authorize_submit)
    app.router.add_post(TOKEN_PATH, token)
    app.router.add_post(REVOKE_PATH, revoke)
    # Xero's paths are case-insensitive: the docs write /connections, the SDK /Connections.
    for path in ("/connections", "/Connections"):
        app.router.add_get(path, list_connections)
        app.router.add_delete(f"{path}/{{id}}", delete_connection)
