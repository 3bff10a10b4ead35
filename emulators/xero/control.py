"""The Xero emulator's control API under ``/_emulator/``: the shared endpoints (reset,
stats, clock, faults, deliveries) plus apps, the Intent to Receive, organisations and the
bookkeeper's actions.  Records come back in Xero's JSON."""

from __future__ import annotations

import secrets
from typing import Any, Final

from aiohttp import web

from emulators.common import money
from emulators.common.control import (
    PREFIX,
    AppAdmin,
    ControlError,
    JsonObject,
    SettingsAdmin,
    add_common_routes,
    choice,
    control_errors,
    create_tenant,
    day,
    flag,
    integer,
    json_response,
    number,
    patch_tenant,
    positive_int,
    read_body,
    required,
    seconds,
    seconds_or_zero,
    string_list,
    text,
)
from emulators.xero.books import CREDIT_KINDS, BookError, Line, Organisation
from emulators.xero.config import (
    MODIFIED_SINCE_MODES,
    SCOPE_STYLES,
    WEBHOOK_CATEGORIES,
    OrganisationSpec,
)
from emulators.xero.keys import STATE_KEY
from emulators.xero.oauth import App
from emulators.xero.state import EmulatorState


def _book_error(exc: Exception) -> web.Response | None:
    if not isinstance(exc, BookError):
        return None
    return json_response({"error": exc.message}, exc.status)


errors = control_errors(_book_error)


def _state(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def _org(request: web.Request) -> Organisation:
    tenant_id = request.match_info["tenant"]
    org = _state(request).organisations.get(tenant_id)
    if org is None:
        raise ControlError(404, f"no organisation {tenant_id}")
    return org


# -- settings ---------------------------------------------------------------------------


def _settings_applied(request: web.Request) -> None:
    state = _state(request)
    state.webhooks.timing.follow(state.config, state.config.webhook_give_up_after)
    for org in state.organisations.values():
        state.configure(org)


def _status(data: JsonObject, key: str) -> int:
    value = integer(data, key, 0)
    if value not in (401, 403, 404):
        raise ControlError(400, f"{key} must be 401, 403 or 404")
    return value


settings = SettingsAdmin(
    lambda request: _state(request).config,
    {
        "access_token_ttl": positive_int,
        "auth_code_ttl": positive_int,
        "refresh_grace": positive_int,
        "refresh_idle_ttl": positive_int,
        "default_page_size": positive_int,
        "max_page_size": positive_int,
        "disconnected_tenant_status": _status,
        "multi_org_consent": flag,
        "refresh_without_connections": flag,
        "payment_webhooks": flag,
        "due_date_bumps_part_paid": flag,
        "webhook_replay_on_reenable": flag,
        "webhook_batch_window": seconds_or_zero,
        "webhook_time_scale": seconds,
        "webhook_timeout": seconds,
        "webhook_give_up_after": seconds,
        "if_modified_since_other": choice(*MODIFIED_SINCE_MODES),
    },
    _settings_applied,
)


# -- apps, webhooks, grants, connections --------------------------------------------------


def _app_from(data: JsonObject, existing: App | None) -> App:
    categories = string_list(
        data,
        "webhook_categories",
        list(existing.webhook_categories) if existing else list(WEBHOOK_CATEGORIES),
    )
    if not set(categories) <= set(WEBHOOK_CATEGORIES):
        raise ControlError(400, f"webhook_categories must be among {list(WEBHOOK_CATEGORIES)}")
    style = text(data, "scope_style", existing.scope_style if existing else "any")
    if style not in SCOPE_STYLES:
        raise ControlError(400, f"scope_style must be one of {list(SCOPE_STYLES)}")
    status = text(data, "webhook_status", existing.webhook_status if existing else "OK")
    if status not in ("OK", "PENDING", "FAILED", "DISABLED"):
        raise ControlError(400, "webhook_status must be OK, PENDING, FAILED or DISABLED")
    webhook_url = data.get("webhook_url", existing.webhook_url if existing else None)
    if webhook_url is not None and not isinstance(webhook_url, str):
        raise ControlError(400, "webhook_url must be a URL or null")
    return App(
        client_id=text(data, "client_id", existing.client_id if existing else "")
        or secrets.token_hex(16).upper(),
        client_secret=text(data, "client_secret", existing.client_secret if existing else "")
        or secrets.token_urlsafe(36),
        redirect_uris=string_list(
            data, "redirect_uris", existing.redirect_uris if existing else []
        ),
        webhook_url=webhook_url or None,
        webhook_key=text(data, "webhook_key", existing.webhook_key if existing else "")
        or secrets.token_urlsafe(48),
        webhook_categories=tuple(categories),
        webhook_status=status,
        scope_style=style,
        name=text(data, "name", existing.name if existing else "ai-collect"),
    )


def _forget(request: web.Request, app: App) -> None:
    oauth = _state(request).oauth
    for grant in oauth.grants.values():
        if grant.client_id == app.client_id:
            oauth.revoke_grant(grant, "app deleted")
    for connection in list(oauth.connections.values()):
        if connection.client_id == app.client_id:
            del oauth.connections[connection.id]


apps = AppAdmin(lambda request: _state(request).oauth, _app_from, _forget)


async def intent_to_receive(request: web.Request) -> web.Response:
    """Run the Intent to Receive against the app's webhook URL (as saving the webhook in
    Xero's portal does); the app's webhook is OK only if it passes."""
    state = _state(request)
    app = apps.known(request, request.match_info["client_id"])
    data = await read_body(request)
    rounds = integer(data, "rounds", 4)
    if not 2 <= rounds <= 20:
        raise ControlError(400, "rounds must be from 2 to 20")
    try:
        record = await state.webhooks.intent_to_receive(app, rounds)
    except ValueError as exc:
        raise ControlError(400, str(exc)) from exc
    return json_response(record)


async def enable_webhook(request: web.Request) -> web.Response:
    """Re-enable a disabled webhook: the Intent to Receive runs again; if it passes the
    queue restarts, with the held events when ``webhook_replay_on_reenable`` is on."""
    state = _state(request)
    app = apps.known(request, request.match_info["client_id"])
    try:
        record = await state.webhooks.intent_to_receive(app)
    except ValueError as exc:
        raise ControlError(400, str(exc)) from exc
    held = 0
    if record["passed"]:
        held = state.webhooks.resume(app.client_id, replay=state.config.webhook_replay_on_reenable)
    return json_response(
        {
            **record,
            "held_events": held,
            "replayed": record["passed"] and state.config.webhook_replay_on_reenable,
        }
    )


async def handshakes(request: web.Request) -> web.Response:
    return json_response({"intent_to_receive": _state(request).webhooks.handshakes})


async def list_grants(request: web.Request) -> web.Response:
    state = _state(request)
    client_id = request.query.get("client_id")
    return json_response(
        {
            "grants": [
                g.to_json()
                for g in state.oauth.grants.values()
                if client_id is None or g.client_id == client_id
            ]
        }
    )


async def list_connections(request: web.Request) -> web.Response:
    state = _state(request)
    tenant_id = request.query.get("tenant_id")
    return json_response(
        {
            "connections": [
                {**c.to_json(), "client_id": c.client_id, "user_id": c.user_id}
                for c in state.oauth.connections.values()
                if tenant_id is None or c.tenant_id == tenant_id
            ]
        }
    )


# -- organisations ----------------------------------------------------------------------


async def list_organisations(request: web.Request) -> web.Response:
    return json_response(
        {"organisations": [o.summary() for o in _state(request).organisations.values()]}
    )


async def create_organisation(request: web.Request) -> web.Response:
    state = _state(request)
    data = await read_body(request)
    spec = OrganisationSpec(
        tenant_id=text(data, "tenant_id") or None,
        name=text(data, "name", "Demo Company (NZ)"),
        timezone=text(data, "timezone", "NEWZEALANDSTANDARDTIME"),
        base_currency=text(data, "base_currency", "NZD"),
        country_code=text(data, "country_code", "NZ"),
        contacts=integer(data, "contacts", 0),
        invoices=integer(data, "invoices", 0),
        overdue_fraction=number(data, "overdue_fraction", 0.3),
        seed=integer(data, "seed", 1),
        today=day(data, "today"),
        starter_tier=bool(data.get("starter_tier", False)),
    )
    taken = bool(spec.tenant_id) and spec.tenant_id in state.organisations
    org = create_tenant(
        taken, f"organisation {spec.tenant_id}", lambda: state.create_organisation(spec)
    )
    return json_response(org.summary(), 201)


async def get_organisation(request: web.Request) -> web.Response:
    return json_response(_org(request).summary())


async def patch_organisation(request: web.Request) -> web.Response:
    org = _org(request)
    data = await read_body(request)
    patch_tenant(org, data)
    if "starter_tier" in data:
        org.starter_tier = bool(data["starter_tier"])
    return json_response(org.summary())


async def disconnect(request: web.Request) -> web.Response:
    """The user disconnects the app in Xero (Settings, Connected Apps): the connections to
    this organisation end; nothing is sent to the app."""
    state = _state(request)
    org = _org(request)
    data = await read_body(request)
    client_id = text(data, "client_id") or None
    if client_id is not None:
        apps.known(request, client_id)
    ended = state.oauth.disconnect(org.tenant_id, client_id)
    return json_response({"removed_connections": [c.id for c in ended]})


# -- bookkeeper actions -----------------------------------------------------------------


def _record(key: str, record: JsonObject) -> web.Response:
    return json_response({key: [record]})


def _lines(data: JsonObject) -> list[Line]:
    raw_lines = data.get("lines")
    if raw_lines is None:
        if "amount" not in data:
            raise ControlError(400, "give lines or amount")
        raw_lines = [{"amount": data["amount"], "description": data.get("description", "Services")}]
    if not isinstance(raw_lines, list) or not raw_lines:
        raise ControlError(400, "lines must be a non-empty list")
    lines = []
    for raw in raw_lines:
        if not isinstance(raw, dict):
            raise ControlError(400, "each line must be an object")
        lines.append(
            Line(
                text(raw, "description", "Services"),
                money.parse_amount(raw.get("amount")),
                integer(raw, "quantity", 1),
            )
        )
    return lines


_CONTACT_FIELDS: Final = ("first_name", "last_name", "email", "phone", "number")


async def create_contact(request: web.Request) -> web.Response:
    org = _org(request)
    data = await read_body(request)
    details = {k: text(data, k) for k in _CONTACT_FIELDS if k in data}
    contact = org.add_contact(required(data, "name"), **details)
    return _record("Contacts", org.contact_json(contact))


async def update_contact(request: web.Request) -> web.Response:
    org = _org(request)
    data = await read_body(request)
    changes = {k: text(data, k) for k in data}
    return _record(
        "Contacts", org.contact_json(org.update_contact(request.match_info["id"], changes))
    )


async def get_contact(request: web.Request) -> web.Response:
    org = _org(request)
    return _record("Contacts", org.contact_json(org.contact(request.match_info["id"])))


async def create_invoice(request: web.Request) -> web.Response:
    org = _org(request)
    data = await read_body(request)
    invoice = org.add_invoice(
        required(data, "contact_id"),
        _lines(data),
        day=day(data, "date"),
        due=day(data, "due_date"),
        status=text(data, "status", "AUTHORISED"),
        number=text(data, "number") or None,
        currency=text(data, "currency") or None,
        reference=text(data, "reference"),
        invoice_type=text(data, "type", "ACCREC"),
    )
    return _record("Invoices", org.invoice_json(invoice))


async def get_invoice(request: web.Request) -> web.Response:
    org = _org(request)
    return _record("Invoices", org.invoice_json(org.invoice(request.match_info["id"])))


async def update_invoice(request: web.Request) -> web.Response:
    org = _org(request)
    data = await read_body(request)
    sent = data.get("sent_to_contact")
    invoice = org.update_invoice(
        request.match_info["id"],
        due=day(data, "due_date"),
        status=text(data, "status") or None,
        reference=text(data, "reference") if "reference" in data else None,
        sent_to_contact=sent if isinstance(sent, bool) else None,
    )
    return _record("Invoices", org.invoice_json(invoice))


async def void_invoice(request: web.Request) -> web.Response:
    org = _org(request)
    return _record("Invoices", org.invoice_json(org.void_invoice(request.match_info["id"])))


async def delete_invoice(request: web.Request) -> web.Response:
    org = _org(request)
    return _record("Invoices", org.invoice_json(org.delete_invoice(request.match_info["id"])))


async def create_payment(request: web.Request) -> web.Response:
    org = _org(request)
    data = await read_body(request)
    invoice_id = required(data, "invoice_id")
    amount = (
        money.parse_amount(data["amount"])
        if data.get("amount") is not None
        else org.amount_due(org.invoice(invoice_id))
    )
    payment = org.add_payment(
        invoice_id, amount, day=day(data, "date"), reference=text(data, "reference")
    )
    return _record("Payments", org.payment_json(payment))


async def get_payment(request: web.Request) -> web.Response:
    org = _org(request)
    return _record("Payments", org.payment_json(org.payment(request.match_info["id"])))


async def delete_payment(request: web.Request) -> web.Response:
    org = _org(request)
    return _record("Payments", org.payment_json(org.delete_payment(request.match_info["id"])))


def _credit_routes(kind: str) -> dict[str, Any]:
    key = f"{kind}s"

    async def create(request: web.Request) -> web.Response:
        org = _org(request)
        data = await read_body(request)
        credit = org.add_credit(
            kind,
            required(data, "contact_id"),
            money.parse_amount(data.get("amount")),
            day=day(data, "date"),
            reference=text(data, "reference"),
            currency=text(data, "currency") or None,
        )
        return _record(key, org.credit_json(credit))

    async def get(request: web.Request) -> web.Response:
        org = _org(request)
        return _record(key, org.credit_json(org.credit(kind, request.match_info["id"])))

    async def allocate(request: web.Request) -> web.Response:
        org = _org(request)
        data = await read_body(request)
        invoice_id = required(data, "invoice_id")
        credit = org.credit(kind, request.match_info["id"])
        amount = (
            money.parse_amount(data["amount"])
            if data.get("amount") is not None
            else min(credit.remaining, org.amount_due(org.invoice(invoice_id)))
        )
        allocation = org.allocate(kind, credit.id, invoice_id, amount, day=day(data, "date"))
        return json_response(
            {
                "Allocations": [{"AllocationID": allocation.id, "Amount": money.to_json(amount)}],
                key: [org.credit_json(credit)],
            }
        )

    async def unallocate(request: web.Request) -> web.Response:
        org = _org(request)
        credit = org.delete_allocation(
            kind, request.match_info["id"], request.match_info["allocation"]
        )
        return _record(key, org.credit_json(credit))

    async def void(request: web.Request) -> web.Response:
        org = _org(request)
        return _record(key, org.credit_json(org.void_credit(kind, request.match_info["id"])))

    return {
        "create": create,
        "get": get,
        "allocate": allocate,
        "unallocate": unallocate,
        "void": void,
    }


_CREDIT_PATHS: Final = {
    "CreditNote": "credit-notes",
    "Overpayment": "overpayments",
    "Prepayment": "prepayments",
}


def add_routes(app: web.Application) -> None:
    add_common_routes(app, app[STATE_KEY], "Xero emulator")
    r = app.router
    p = PREFIX
    settings.add_routes(app)
    apps.add_routes(app)
    r.add_post(f"{p}/apps/{{client_id}}/intent-to-receive", intent_to_receive)
    r.add_post(f"{p}/apps/{{client_id}}/webhook/enable", enable_webhook)
    r.add_get(f"{p}/intent-to-receive", handshakes)
    r.add_get(f"{p}/grants", list_grants)
    r.add_get(f"{p}/connections", list_connections)
    r.add_get(f"{p}/organisations", list_organisations)
    r.add_post(f"{p}/organisations", create_organisation)
    o = f"{p}/organisations/{{tenant}}"
    r.add_get(o, get_organisation)
    r.add_patch(o, patch_organisation)
    r.add_post(f"{o}/disconnect", disconnect)
    r.add_post(f"{o}/contacts", create_contact)
    r.add_get(f"{o}/contacts/{{id}}", get_contact)
    r.add_patch(f"{o}/contacts/{{id}}", update_contact)
    r.add_post(f"{o}/invoices", create_invoice)
    r.add_get(f"{o}/invoices/{{id}}", get_invoice)
    r.add_patch(f"{o}/invoices/{{id}}", update_invoice)
    r.add_post(f"{o}/invoices/{{id}}/void", void_invoice)
    r.add_delete(f"{o}/invoices/{{id}}", delete_invoice)
    r.add_post(f"{o}/payments", create_payment)
    r.add_get(f"{o}/payments/{{id}}", get_payment)
    r.add_delete(f"{o}/payments/{{id}}", delete_payment)
    for kind in CREDIT_KINDS:
        handlers = _credit_routes(kind)
        base = f"{o}/{_CREDIT_PATHS[kind]}"
        r.add_post(base, handlers["create"])
        r.add_get(f"{base}/{{id}}", handlers["get"])
        r.add_post(f"{base}/{{id}}/allocations", handlers["allocate"])
        r.add_delete(f"{base}/{{id}}/allocations/{{allocation}}", handlers["unallocate"])
        r.add_post(f"{base}/{{id}}/void", handlers["void"])
