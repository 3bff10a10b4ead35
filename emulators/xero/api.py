"""The Xero Accounting API subset: Invoices, Payments, CreditNotes, Overpayments,
Prepayments, Contacts and Organisation, read-only, under ``/api.xro/2.0/``.

Every request passes :func:`api_gate` first: the bearer token (401), the ``xero-tenant-id``
header and the user's connection to that organisation (403 by default), the token's scopes
(401), the organisation's and the app's limits (429 with ``X-Rate-Limit-Problem`` and
``Retry-After``), forced throttling, injected latency and errors.  Every answer that got
past the token carries ``X-DayLimit-Remaining``, ``X-MinLimit-Remaining`` and
``X-AppMinLimit-Remaining``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Handler

from emulators.common.http import dumps, raw_json
from emulators.xero.books import Credit, Organisation
from emulators.xero.dates import ms_instant, parse_modified_since
from emulators.xero.keys import GRANT_KEY, ORG_KEY, STATE_KEY
from emulators.xero.oauth import AccessDenied, Grant
from emulators.xero.responses import exception, not_found, problem, validation_error
from emulators.xero.where import WhereError, parse_order, parse_where, sort_records

PREFIX: Final = "/api.xro/2.0"
# Resource -> the scopes that can read it (broad or granular, write scopes included).
READ_SCOPES: Final = {
    "Invoices": ("accounting.transactions", "accounting.invoices"),
    "CreditNotes": ("accounting.transactions", "accounting.invoices"),
    "Payments": ("accounting.transactions", "accounting.payments"),
    "Overpayments": ("accounting.transactions", "accounting.payments"),
    "Prepayments": ("accounting.transactions", "accounting.payments"),
    "Contacts": ("accounting.contacts",),
    "Organisation": ("accounting.settings",),
}
Record = dict[str, Any]


def _has_scope(grant: Grant, resource: str) -> bool:
    for base in READ_SCOPES.get(resource, ()):
        if base in grant.scopes or f"{base}.read" in grant.scopes:
            return True
    return False


@web.middleware
async def api_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(PREFIX + "/"):
        return await handler(request)
    state = request.app[STATE_KEY]
    now = state.clock.time()
    try:
        grant = state.oauth.grant_for(request.headers.get("Authorization"), now)
    except AccessDenied as exc:
        return problem(401, "Unauthorized", exc.detail)
    tenant_id = request.headers.get("xero-tenant-id", "").strip()
    org = state.organisations.get(tenant_id)
    if not tenant_id or org is None or state.oauth.connection_for(grant, tenant_id) is None:
        status = state.config.disconnected_tenant_status
        return problem(
            status, "Forbidden" if status == 403 else "Unauthorized", "AuthenticationUnsuccessful"
        )
    resource, _, tail = request.path[len(PREFIX) + 1 :].partition("/")
    if resource in READ_SCOPES and not _has_scope(grant, resource):
        return problem(401, "Unauthorized", "AuthorizationUnsuccessful")
    limits = state.limits(org)
    faults = state.faults
    injected = faults.applies("api", tenant_id)
    if injected and faults.forced_throttle():
        faults.count("throttle")
        state.throttled["minute"] += 1
        headers = state.limiter.headers(grant.client_id, tenant_id, limits, now)
        headers["X-Rate-Limit-Problem"] = "minute"
        headers["Retry-After"] = str(faults.faults.retry_after or 60)
        return web.Response(status=429, headers=headers)
    verdict = state.limiter.admit(grant.client_id, tenant_id, limits, now)
    if not verdict.ok:
        state.throttled[verdict.problem or "?"] += 1
        headers = state.limiter.headers(grant.client_id, tenant_id, limits, now)
        headers["X-Rate-Limit-Problem"] = verdict.problem or ""
        if verdict.retry_after is not None:
            headers["Retry-After"] = str(verdict.retry_after)
        return web.Response(status=429, headers=headers)
    try:
        response: web.StreamResponse
        if injected and (delay := faults.latency()):
            await asyncio.sleep(delay)
        if injected and faults.roll(faults.faults.error_rate):
            faults.count("error")
            response = exception(
                faults.faults.error_status, 500, "UnknownErrorException", "An error occurred"
            )
        else:
            state.record(tenant_id, resource, bool(tail), request.query)
            request[ORG_KEY] = org
            request[GRANT_KEY] = grant
            response = await handler(request)
    finally:
        state.limiter.release(grant.client_id, tenant_id)
    response.headers.update(state.limiter.headers(grant.client_id, tenant_id, limits, now))
    return response


def _envelope(request: web.Request, key: str, records: list[Record], extra: Record) -> web.Response:
    state = request.app[STATE_KEY]
    app = state.oauth.apps.get(request[GRANT_KEY].client_id)
    body: Record = {
        "Id": str(uuid.uuid4()),
        "Status": "OK",
        "ProviderName": app.name if app is not None else "",
        "DateTimeUTC": ms_instant(state.clock.time()),
        **extra,
        key: records,
    }
    return raw_json(dumps(body))


def _csv(request: web.Request, name: str) -> set[str] | None:
    for key, value in request.query.items():
        if key.lower() == name.lower():
            return {v.strip().lower() for v in value.split(",") if v.strip()}
    return None


def _flag(request: web.Request, name: str) -> bool:
    for key, value in request.query.items():
        if key.lower() == name.lower():
            return value.lower() == "true"
    return False


def _param(request: web.Request, name: str) -> str | None:
    for key, value in request.query.items():
        if key.lower() == name.lower():
            return value
    return None


class _BadRequest(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__("bad request")
        self.response = response


def _modified_since(request: web.Request) -> float | None:
    header = request.headers.get("If-Modified-Since")
    if not header:
        return None
    mode = request.app[STATE_KEY].config.if_modified_since_other
    try:
        since, strict = parse_modified_since(header)
    except ValueError:
        strict, since = False, None
    if strict and since is not None:
        return since
    if mode == "ignore":
        return None
    if mode == "reject" or since is None:
        raise _BadRequest(validation_error(f"Invalid If-Modified-Since header: {header}"))
    return since


def _by_updated_only(order: list[tuple[tuple[str, ...], bool]] | None) -> bool:
    """No order, or only ``UpdatedDateUTC`` (either direction)."""
    return order is None or (len(order) == 1 and order[0][0] == ("updateddateutc",))


_WHERE_WORDS = frozenset({"and", "or", "not", "datetime", "guid", "true", "false", "null"})


def where_paths(text: str) -> set[tuple[str, ...]]:
    """Every field path a ``where`` names (quoted strings and keywords left out; a method
    such as ``Name.Contains`` counts as a path of its own, so it is never taken as known)."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    return {
        tuple(word.lower().split("."))
        for word in re.findall(r"[A-Za-z_][A-Za-z0-9_.]*", bare)
        if word.lower() not in _WHERE_WORDS
    }


def _pagination(page: int, size: int, count: int) -> Record:
    return {
        "page": page,
        "pageSize": size,
        "pageCount": (count + size - 1) // size,
        "itemCount": count,
    }


def _list(
    request: web.Request,
    key: str,
    items: Iterable[Any],
    render: Callable[[Any, bool], Record],
    *,
    id_of: Callable[[Any], str],
    updated_of: Callable[[Any], float],
    prefilter: Callable[[Any], bool] | None = None,
    summary_when_unpaged: bool = False,
    fields: tuple[Callable[[Any], Record], frozenset[tuple[str, ...]]] | None = None,
) -> web.Response:
    """The shared listing: IDs, If-Modified-Since, where, order, page/pageSize.

    ``fields``: a cheap rendering of the fields listings filter and sort on, with the
    paths it holds. A page whose ``where`` and ``order`` name only those is chosen on them
    and only the page is rendered whole (the same records, in the same order)."""
    state = request.app[STATE_KEY]
    try:
        since = _modified_since(request)
        ids = _csv(request, "IDs")
        where_text = _param(request, "where")
        predicate = parse_where(where_text) if where_text and where_text.strip() else None
        order_text = _param(request, "order")
        order = parse_order(order_text) if order_text and order_text.strip() else None
        page_text = _param(request, "page")
        page = int(page_text) if page_text is not None else None
        size_text = _param(request, "pageSize")
        size = int(size_text) if size_text is not None else state.config.default_page_size
    except _BadRequest as exc:
        return exc.response
    except WhereError as exc:
        return exception(400, 16, "QueryParseException", str(exc))
    except ValueError:
        return validation_error("page and pageSize must be whole numbers")
    if page is not None and page < 1:
        page = 1
    size = max(1, min(size, state.config.max_page_size))
    summary = _flag(request, "summaryOnly") or (summary_when_unpaged and page is None)
    chosen = [
        item
        for item in items
        if (ids is None or id_of(item).lower() in ids)
        and (since is None or updated_of(item) >= since)
        and (prefilter is None or prefilter(item))
    ]
    if page is not None and predicate is None and _by_updated_only(order):
        # The same page without rendering every record first (a 100,000-invoice organisation
        # paged by 100 would otherwise render all of them for each page): the order is the
        # rendered UpdatedDateUTC's, whole milliseconds, stable for ties.
        if order:
            chosen.sort(key=lambda item: int(updated_of(item) * 1000), reverse=order[0][1])
        pagination = _pagination(page, size, len(chosen))
        window = chosen[(page - 1) * size : page * size]
        rendered = [render(item, summary) for item in window]
        return _envelope(request, key, rendered, {"pagination": pagination})
    if (
        page is not None
        and predicate is not None
        and fields is not None
        and where_paths(where_text or "") | {path for path, _ in order or ()} <= fields[1]
    ):
        light, _known = fields
        kept = [(row, item) for item in chosen if predicate(row := light(item))]
        if order is not None:
            rows = [row for row, _ in kept]
            position = {id(row): n for n, row in enumerate(rows)}
            sort_records(rows, order)
            kept = [kept[position[id(row)]] for row in rows]
        pagination = _pagination(page, size, len(kept))
        window = kept[(page - 1) * size : page * size]
        rendered = [render(item, summary) for _, item in window]
        return _envelope(request, key, rendered, {"pagination": pagination})
    records = [render(item, summary) for item in chosen]
    if predicate is not None:
        records = [r for r in records if predicate(r)]
    if order is not None:
        sort_records(records, order)
    extra: Record = {}
    if page is not None:
        extra["pagination"] = _pagination(page, size, len(records))
        records = records[(page - 1) * size : page * size]
    return _envelope(request, key, records, extra)


async def invoices(request: web.Request) -> web.Response:
    org: Organisation = request[ORG_KEY]
    statuses = _csv(request, "Statuses")
    numbers = _csv(request, "InvoiceNumbers")
    contacts = _csv(request, "ContactIDs")

    def keep(invoice: Any) -> bool:
        return (
            (statuses is None or invoice.status.lower() in statuses)
            and (numbers is None or invoice.number.lower() in numbers)
            and (contacts is None or invoice.contact_id.lower() in contacts)
        )

    return _list(
        request,
        "Invoices",
        org.invoices.values(),
        lambda i, summary: org.invoice_json(i, summary=summary),
        id_of=lambda i: i.id,
        updated_of=lambda i: i.updated,
        prefilter=keep,
        summary_when_unpaged=True,
        fields=(org.invoice_fields, org.INVOICE_FIELDS),
    )


async def invoice(request: web.Request) -> web.Response:
    org: Organisation = request[ORG_KEY]
    key = request.match_info["id"]
    found = org.invoices.get(key) or next(
        (i for i in org.invoices.values() if i.number == key), None
    )
    if found is None:
        return not_found()
    return _envelope(request, "Invoices", [org.invoice_json(found)], {})


async def payments(request: web.Request) -> web.Response:
    org: Organisation = request[ORG_KEY]
    return _list(
        request,
        "Payments",
        org.payments.values(),
        lambda p, _summary: org.payment_json(p),
        id_of=lambda p: p.id,
        updated_of=lambda p: p.updated,
    )


async def payment(request: web.Request) -> web.Response:
    org: Organisation = request[ORG_KEY]
    found = org.payments.get(request.match_info["id"])
    if found is None:
        return not_found()
    return _envelope(request, "Payments", [org.payment_json(found)], {})


def _credits(kind: str) -> tuple[Handler, Handler]:
    key = f"{kind}s"

    def of_kind(org: Organisation) -> list[Credit]:
        return [c for c in org.credits.values() if c.kind == kind]

    async def listing(request: web.Request) -> web.Response:
        org: Organisation = request[ORG_KEY]
        return _list(
            request,
            key,
            of_kind(org),
            lambda c, _summary: org.credit_json(c),
            id_of=lambda c: c.id,
            updated_of=lambda c: c.updated,
        )

    async def single(request: web.Request) -> web.Response:
        org: Organisation = request[ORG_KEY]
        found = org.credits.get(request.match_info["id"])
        if found is None or found.kind != kind:
            return not_found()
        return _envelope(request, key, [org.credit_json(found)], {})

    return listing, single


async def contacts(request: web.Request) -> web.Response:
    org: Organisation = request[ORG_KEY]
    include_archived = _flag(request, "includeArchived") or _csv(request, "IDs") is not None
    search = (_param(request, "searchTerm") or "").lower()

    def keep(contact: Any) -> bool:
        if contact.status == "ARCHIVED" and not include_archived:
            return False
        if search:
            fields = (
                contact.name,
                contact.first_name,
                contact.last_name,
                contact.number,
                contact.email,
            )
            return any(search in f.lower() for f in fields)
        return True

    return _list(
        request,
        "Contacts",
        org.contacts.values(),
        lambda c, summary: org.contact_json(c, summary=summary),
        id_of=lambda c: c.id,
        updated_of=lambda c: c.updated,
        prefilter=keep,
    )


async def contact(request: web.Request) -> web.Response:
    org: Organisation = request[ORG_KEY]
    found = org.contacts.get(request.match_info["id"])
    if found is None:
        return not_found()
    return _envelope(request, "Contacts", [org.contact_json(found)], {})


async def organisation(request: web.Request) -> web.Response:
    org: Organisation = request[ORG_KEY]
    return _envelope(request, "Organisations", [org.organisation_json()], {})


async def read_only(request: web.Request) -> web.Response:
    return validation_error(
        "The emulator's API is read-only: use the bookkeeper actions under /_emulator/"
    )


async def unknown(request: web.Request) -> web.Response:
    return not_found()


def add_routes(app: web.Application) -> None:
    r = app.router
    p = PREFIX
    r.add_get(f"{p}/Invoices", invoices)
    r.add_get(f"{p}/Invoices/{{id}}", invoice)
    r.add_get(f"{p}/Payments", payments)
    r.add_get(f"{p}/Payments/{{id}}", payment)
    for kind in ("CreditNote", "Overpayment", "Prepayment"):
        listing, single = _credits(kind)
        r.add_get(f"{p}/{kind}s", listing)
        r.add_get(f"{p}/{kind}s/{{id}}", single)
    r.add_get(f"{p}/Contacts", contacts)
    r.add_get(f"{p}/Contacts/{{id}}", contact)
    r.add_get(f"{p}/Organisation", organisation)
    for method in ("POST", "PUT", "DELETE"):
        r.add_route(method, f"{p}/{{tail:.*}}", read_only)
    r.add_get(f"{p}/{{tail:.*}}", unknown)
