"""The emulator's own control API under ``/_emulator/``: JSON in, JSON out.

Bookkeeper actions (what a user does in QBO), company and app setup, faults, the clock,
and what webhooks were delivered.  Entities come back in Intuit's JSON, under their name.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation

from aiohttp import web

from emulators.common import money
from emulators.common.control import (
    PREFIX,
    AppAdmin,
    ControlError,
    JsonObject,
    SettingsAdmin,
    add_common_routes,
    control_errors,
    create_tenant,
    json_response,
    patch_tenant,
    positive_int,
    read_body,
    seconds,
    seconds_or_zero,
)
from emulators.common.control import day as _date
from emulators.common.control import integer as _int
from emulators.common.control import number as _number
from emulators.common.control import required as _required
from emulators.common.control import text as _str
from emulators.common.http import raw_json
from emulators.qbo.books import Application, BookError, Company
from emulators.qbo.config import WEBHOOK_FORMATS, CompanySpec
from emulators.qbo.keys import STATE_KEY
from emulators.qbo.model import CREDIT_MEMO, INVOICE, Address, Entity, SalesLine, Tombstone
from emulators.qbo.oauth import App
from emulators.qbo.state import EmulatorState


def _book_error(exc: Exception) -> web.Response | None:
    if not isinstance(exc, BookError):
        return None
    status = 404 if exc.code == "610" else exc.status
    return json_response({"error": exc.message, "code": exc.code, "detail": exc.detail}, status)


errors = control_errors(_book_error)
_json = json_response
_body = read_body


def _state(request: web.Request) -> EmulatorState:
    return request.app[STATE_KEY]


def _company(request: web.Request) -> Company:
    realm_id = request.match_info["realm"]
    company = _state(request).companies.get(realm_id)
    if company is None:
        raise ControlError(404, f"no company with realm id {realm_id}")
    return company


def _rate(data: JsonObject) -> Decimal | None:
    value = data.get("exchange_rate")
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise ControlError(400, "exchange_rate must be a number") from exc


def _sales_lines(data: JsonObject) -> list[SalesLine]:
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
            SalesLine(
                amount=money.parse_amount(raw.get("amount")),
                description=_str(raw, "description", "Services"),
                item_name=_str(raw, "item", "Services"),
                item_id=_str(raw, "item_id", "1"),
                qty=_int(raw, "qty", 1),
            )
        )
    return lines


def _applications(data: JsonObject) -> list[Application] | None:
    raw_lines = data.get("lines")
    if raw_lines is None:
        return None
    if not isinstance(raw_lines, list):
        raise ControlError(400, "lines must be a list")
    apps = []
    for raw in raw_lines:
        if not isinstance(raw, dict):
            raise ControlError(400, "each line must be an object")
        amount = money.parse_amount(raw.get("amount"))
        if raw.get("invoice_id") is not None:
            apps.append(Application(INVOICE, _str(raw, "invoice_id"), amount))
        elif raw.get("credit_memo_id") is not None:
            apps.append(Application(CREDIT_MEMO, _str(raw, "credit_memo_id"), amount))
        else:
            raise ControlError(400, "each line needs invoice_id or credit_memo_id")
    return apps


def _entity(company: Company, entity: Entity) -> web.Response:
    body = b'{"%s":%s}' % (entity.kind.encode(), entity.json_bytes(company.tz, company))
    return raw_json(body)


def _deleted(tomb: Tombstone) -> web.Response:
    return _json({tomb.kind: {"status": "Deleted", "domain": "QBO", "Id": tomb.id}})


# -- settings -------------------------------------------------------------------------------


def _settings_applied(request: web.Request) -> None:
    state = _state(request)
    state.webhooks.timing.follow(state.config)


settings = SettingsAdmin(
    lambda request: _state(request).config,
    {
        "access_token_ttl": positive_int,
        "auth_code_ttl": positive_int,
        "refresh_token_ttl": positive_int,
        "cdc_max_objects": positive_int,
        "cdc_lookback_days": positive_int,
        "webhook_batch_window": seconds_or_zero,
        "webhook_time_scale": seconds,
        "webhook_timeout": seconds,
    },
    _settings_applied,
)


# -- apps and grants ------------------------------------------------------------------------


def _app_from(data: JsonObject, existing: App | None) -> App:
    fmt = _str(data, "webhook_format", existing.webhook_format if existing else "cloudevents")
    if fmt not in WEBHOOK_FORMATS:
        raise ControlError(400, f"webhook_format must be one of {list(WEBHOOK_FORMATS)}")
    uris = data.get("redirect_uris", existing.redirect_uris if existing else [])
    if isinstance(uris, str):
        uris = [uris]
    if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
        raise ControlError(400, "redirect_uris must be a list of URLs")
    webhook_url = data.get("webhook_url", existing.webhook_url if existing else None)
    if webhook_url is not None and not isinstance(webhook_url, str):
        raise ControlError(400, "webhook_url must be a URL or null")
    return App(
        client_id=_str(data, "client_id", existing.client_id if existing else "")
        or "AB" + secrets.token_urlsafe(30),
        client_secret=_str(data, "client_secret", existing.client_secret if existing else "")
        or secrets.token_urlsafe(30),
        redirect_uris=list(uris),
        webhook_url=webhook_url or None,
        verifier_token=_str(data, "verifier_token", existing.verifier_token if existing else "")
        or secrets.token_hex(18),
        webhook_format=fmt,
        name=_str(data, "name", existing.name if existing else "ai-collect"),
    )


def _forget(request: web.Request, app: App) -> None:
    oauth = _state(request).oauth
    for grant in oauth.grants.values():
        if grant.client_id == app.client_id:
            oauth.revoke_grant(grant, "app deleted")


apps = AppAdmin(lambda request: _state(request).oauth, _app_from, _forget)


async def list_grants(request: web.Request) -> web.Response:
    state = _state(request)
    realm_id = request.query.get("realm_id")
    client_id = request.query.get("client_id")
    now = state.clock.time()
    grants = [
        {**g.to_json(), "live": g.live(now)}
        for g in state.oauth.grants.values()
        if (realm_id is None or g.realm_id == realm_id)
        and (client_id is None or g.client_id == client_id)
    ]
    return _json({"grants": grants})


# -- companies ------------------------------------------------------------------------------


async def list_companies(request: web.Request) -> web.Response:
    return _json({"companies": [c.summary() for c in _state(request).companies.values()]})


async def create_company(request: web.Request) -> web.Response:
    state = _state(request)
    data = await _body(request)
    currencies = data.get("currencies", ["USD", "CAD", "EUR", "GBP"])
    if not isinstance(currencies, list) or not all(isinstance(c, str) for c in currencies):
        raise ControlError(400, "currencies must be a list of ISO codes")
    spec = CompanySpec(
        realm_id=_str(data, "realm_id") or None,
        name=_str(data, "name", "Demo Company"),
        customers=_int(data, "customers", 0),
        invoices=_int(data, "invoices", 0),
        overdue_fraction=_number(data, "overdue_fraction", 0.3),
        seed=_int(data, "seed", 1),
        multicurrency=bool(data.get("multicurrency", False)),
        currencies=tuple(currencies),
        home_currency=_str(data, "home_currency", "USD"),
        country=_str(data, "country", "US"),
        timezone=_str(data, "timezone", "America/Los_Angeles"),
        today=_date(data, "today"),
    )
    taken = bool(spec.realm_id) and spec.realm_id in state.companies
    company = create_tenant(taken, f"realm {spec.realm_id}", lambda: state.create_company(spec))
    return _json(company.summary(), 201)


async def get_company(request: web.Request) -> web.Response:
    return _json(_company(request).summary())


async def patch_company(request: web.Request) -> web.Response:
    company = _company(request)
    patch_tenant(company, await _body(request))
    return _json(company.summary())


async def disconnect(request: web.Request) -> web.Response:
    """The user disconnects the app in QBO: its grants for this company are revoked."""
    state = _state(request)
    company = _company(request)
    data = await _body(request)
    client_id = _str(data, "client_id") or None
    if client_id is not None:
        apps.known(request, client_id)
    ended = state.oauth.disconnect(company.realm_id, client_id)
    return _json({"revoked_grants": [g.id for g in ended]})


# -- bookkeeper actions ---------------------------------------------------------------------


def _address(data: JsonObject) -> Address | None:
    raw = data.get("address")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ControlError(400, "address must be an object")
    return Address.from_dict(raw)


async def create_customer(request: web.Request) -> web.Response:
    company = _company(request)
    data = await _body(request)
    customer = company.add_customer(
        display_name=_required(data, "display_name"),
        given_name=_str(data, "given_name"),
        family_name=_str(data, "family_name"),
        company_name=_str(data, "company_name"),
        email=_str(data, "email"),
        phone=_str(data, "phone"),
        mobile=_str(data, "mobile"),
        address=_address(data),
        currency=_str(data, "currency") or None,
        notes=_str(data, "notes"),
    )
    return _entity(company, customer)


async def update_customer(request: web.Request) -> web.Response:
    company = _company(request)
    data = await _body(request)
    return _entity(company, company.update_customer(request.match_info["id"], data))


async def delete_customer(request: web.Request) -> web.Response:
    company = _company(request)
    return _entity(company, company.delete_customer(request.match_info["id"]))


async def create_invoice(request: web.Request) -> web.Response:
    company = _company(request)
    data = await _body(request)
    invoice = company.add_invoice(
        customer_id=_required(data, "customer_id"),
        lines=_sales_lines(data),
        txn_date=_date(data, "txn_date"),
        due_date=_date(data, "due_date"),
        doc_number=_str(data, "doc_number") or None,
        exchange_rate=_rate(data),
        private_note=_str(data, "private_note"),
        terms_days=_int(data, "terms_days", 30),
    )
    return _entity(company, invoice)


async def update_invoice(request: web.Request) -> web.Response:
    company = _company(request)
    data = await _body(request)
    lines = _sales_lines(data) if ("lines" in data or "amount" in data) else None
    note = _str(data, "private_note") if "private_note" in data else None
    invoice = company.update_invoice(
        request.match_info["id"], due_date=_date(data, "due_date"), lines=lines, private_note=note
    )
    return _entity(company, invoice)


async def void_invoice(request: web.Request) -> web.Response:
    company = _company(request)
    return _entity(company, company.void_invoice(request.match_info["id"]))


async def delete_invoice(request: web.Request) -> web.Response:
    return _deleted(_company(request).delete_invoice(request.match_info["id"]))


def _payment_total(data: JsonObject, apps: list[Application]) -> int:
    if "amount" in data:
        return money.parse_amount(data["amount"])
    applied = sum(a.amount for a in apps if a.txn_type == INVOICE)
    return applied - sum(a.amount for a in apps if a.txn_type == CREDIT_MEMO)


async def create_payment(request: web.Request) -> web.Response:
    company = _company(request)
    data = await _body(request)
    apps = _applications(data) or []
    customer_id = _str(data, "customer_id")
    if not customer_id:
        first_invoice = next((a for a in apps if a.txn_type == INVOICE), None)
        if first_invoice is None:
            raise ControlError(400, "customer_id is required for a payment applied to nothing")
        invoice = company.invoices.get(first_invoice.txn_id)
        if invoice is None:
            raise ControlError(404, f"no invoice {first_invoice.txn_id}")
        customer_id = invoice.customer_id
    payment = company.add_payment(
        customer_id=customer_id,
        total=_payment_total(data, apps),
        applications=apps,
        txn_date=_date(data, "txn_date"),
        private_note=_str(data, "private_note"),
        ref_num=_str(data, "ref_num"),
        payment_method=_str(data, "payment_method"),
        exchange_rate=_rate(data),
    )
    return _entity(company, payment)


async def update_payment(request: web.Request) -> web.Response:
    company = _company(request)
    data = await _body(request)
    payment = company.update_payment(
        request.match_info["id"],
        total=money.parse_amount(data["amount"]) if "amount" in data else None,
        applications=_applications(data),
        private_note=_str(data, "private_note") if "private_note" in data else None,
        txn_date=_date(data, "txn_date"),
    )
    return _entity(company, payment)


async def void_payment(request: web.Request) -> web.Response:
    company = _company(request)
    return _entity(company, company.void_payment(request.match_info["id"]))


async def delete_payment(request: web.Request) -> web.Response:
    return _deleted(_company(request).delete_payment(request.match_info["id"]))


async def create_credit_memo(request: web.Request) -> web.Response:
    company = _company(request)
    data = await _body(request)
    memo = company.add_credit_memo(
        customer_id=_required(data, "customer_id"),
        lines=_sales_lines(data),
        txn_date=_date(data, "txn_date"),
        private_note=_str(data, "private_note"),
        exchange_rate=_rate(data),
    )
    return _entity(company, memo)


async def apply_credit_memo(request: web.Request) -> web.Response:
    """Returns the zero-total Payment QBO records for the application."""
    company = _company(request)
    data = await _body(request)
    amount = money.parse_amount(data["amount"]) if data.get("amount") is not None else None
    payment = company.apply_credit_memo(
        request.match_info["id"], _required(data, "invoice_id"), amount
    )
    return _entity(company, payment)


async def void_credit_memo(request: web.Request) -> web.Response:
    company = _company(request)
    return _entity(company, company.void_credit_memo(request.match_info["id"]))


async def delete_credit_memo(request: web.Request) -> web.Response:
    return _deleted(_company(request).delete_credit_memo(request.match_info["id"]))


def _reader(kind: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def read(request: web.Request) -> web.Response:
        company = _company(request)
        return _entity(company, company.get(kind, request.match_info["id"]))

    return read


def add_routes(app: web.Application) -> None:
    add_common_routes(app, app[STATE_KEY], "Intuit QBO emulator")
    r = app.router
    p = PREFIX
    settings.add_routes(app)
    apps.add_routes(app)
    r.add_get(f"{p}/grants", list_grants)
    r.add_get(f"{p}/companies", list_companies)
    r.add_post(f"{p}/companies", create_company)
    c = f"{p}/companies/{{realm}}"
    r.add_get(c, get_company)
    r.add_patch(c, patch_company)
    r.add_post(f"{c}/disconnect", disconnect)
    r.add_post(f"{c}/customers", create_customer)
    r.add_get(f"{c}/customers/{{id}}", _reader("Customer"))
    r.add_patch(f"{c}/customers/{{id}}", update_customer)
    r.add_delete(f"{c}/customers/{{id}}", delete_customer)
    r.add_post(f"{c}/invoices", create_invoice)
    r.add_get(f"{c}/invoices/{{id}}", _reader("Invoice"))
    r.add_patch(f"{c}/invoices/{{id}}", update_invoice)
    r.add_post(f"{c}/invoices/{{id}}/void", void_invoice)
    r.add_delete(f"{c}/invoices/{{id}}", delete_invoice)
    r.add_post(f"{c}/payments", create_payment)
    r.add_get(f"{c}/payments/{{id}}", _reader("Payment"))
    r.add_patch(f"{c}/payments/{{id}}", update_payment)
    r.add_post(f"{c}/payments/{{id}}/void", void_payment)
    r.add_delete(f"{c}/payments/{{id}}", delete_payment)
    r.add_post(f"{c}/credit-memos", create_credit_memo)
    r.add_get(f"{c}/credit-memos/{{id}}", _reader("CreditMemo"))
    r.add_post(f"{c}/credit-memos/{{id}}/apply", apply_credit_memo)
    r.add_post(f"{c}/credit-memos/{{id}}/void", void_credit_memo)
    r.add_delete(f"{c}/credit-memos/{{id}}", delete_credit_memo)
