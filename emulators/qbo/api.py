"""QBO Accounting API v3: query, read by id, CDC, companyinfo, preferences.

Every ``/v3/company/{realm}/...`` request passes :func:`api_gate` first: bearer token
(401/3200), the app's authorisation for the realm (403/3100), the realm's limits and forced
throttling (429/3001), injected latency and errors.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final
from urllib.parse import parse_qs

from aiohttp import web
from aiohttp.typedefs import Handler

from emulators.common.clock import zone
from emulators.common.http import dumps, raw_json
from emulators.qbo import query as q
from emulators.qbo.books import Company
from emulators.qbo.clock import format_millis, format_seconds, parse_datetime
from emulators.qbo.keys import COMPANY_KEY, STATE_KEY
from emulators.qbo.model import CREDIT_MEMO, CUSTOMER, ENTITY_NAMES, INVOICE, PAYMENT, Entity
from emulators.qbo.oauth import AccessDenied
from emulators.qbo.responses import (
    fault,
    gateway_fault,
    invalid_query,
    not_found,
    system_fault,
    throttled,
)

ENTITY_PATHS: Final = {
    "invoice": INVOICE,
    "customer": CUSTOMER,
    "payment": PAYMENT,
    "creditmemo": CREDIT_MEMO,
}
ENTITY_BY_LOWER: Final = {name.lower(): name for name in ENTITY_NAMES}
# QBO entities without data here, by the lower-case name used in paths and CDC lists.
EMPTY_BY_LOWER: Final = {name.lower(): name for name in q.EMPTY_ENTITIES}
_NO_REALM_TZ: Final = zone("America/Los_Angeles")


@web.middleware
async def api_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    realm_id = request.match_info.get("realm")
    if realm_id is None or not request.path.startswith("/v3/company/"):
        return await handler(request)
    state = request.app[STATE_KEY]
    now = state.clock.time()
    company = state.companies.get(realm_id)
    tz = company.tz if company is not None else _NO_REALM_TZ
    try:
        state.oauth.check_access(request.headers.get("Authorization"), realm_id, now)
    except AccessDenied as exc:
        return gateway_fault(exc.status, exc.detail, now)
    if company is None:
        return gateway_fault(403, "The company no longer exists", now)
    faults = state.faults
    settings = faults.faults
    injected = faults.applies("api", realm_id)
    if injected and faults.forced_throttle():
        faults.count("throttle")
        state.throttled[realm_id] += 1
        return throttled(company.now(), tz, settings.retry_after)
    if not state.limiter.admit(
        realm_id, now, settings.requests_per_minute, settings.max_concurrent
    ):
        state.throttled[realm_id] += 1
        return throttled(company.now(), tz, settings.retry_after)
    try:
        if injected:
            delay = faults.latency()
            if delay:
                await asyncio.sleep(delay)
            if faults.roll(settings.error_rate):
                faults.count("error")
                return system_fault(settings.error_status, company.now(), tz)
        state.api_requests[realm_id] += 1
        request[COMPANY_KEY] = company
        return await handler(request)
    finally:
        state.limiter.release(realm_id)


def _time(request: web.Request, company: Company) -> str:
    return format_millis(company.now(), company.tz)


def _envelope(name: str, entity: Entity, company: Company, time_text: str) -> bytes:
    return b"".join(
        (
            b'{"',
            name.encode(),
            b'":',
            entity.json_bytes(company.tz, company),
            b',"time":"',
            time_text.encode(),
            b'"}',
        )
    )


async def _query_text(request: web.Request) -> str | None:
    if request.method == "GET":
        return request.query.get("query")
    body = await request.text()
    if request.content_type == "application/x-www-form-urlencoded":
        values = parse_qs(body).get("query")
        return values[0] if values else None
    return body or request.query.get("query")


async def query(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    company = request[COMPANY_KEY]
    now = company.now()
    text = await _query_text(request)
    if not text or not text.strip():
        return invalid_query("QueryParserError: the query is empty", now, company.tz)
    try:
        parsed = q.parse(text, company.tz, state.config.query_max_results)
    except q.QueryError as exc:
        return invalid_query(str(exc), now, company.tz)
    state.api_queries[(company.realm_id, parsed.entity)] += 1
    result = q.execute(company, parsed, state.query_cache)
    time_text = format_millis(now, company.tz)
    if result.count is not None:
        inner = b'{"totalCount":%d}' % result.count
    elif not result.rows:
        inner = b"{}"
    else:
        tz = company.tz
        inner = b"".join(
            (
                b'{"',
                result.entity.encode(),
                b'":[',
                b",".join([row.json_bytes(tz, company) for row in result.rows]),
                b'],"startPosition":%d,"maxResults":%d}'
                % (result.start_position, len(result.rows)),
            )
        )
    return raw_json(b'{"QueryResponse":' + inner + b',"time":"' + time_text.encode() + b'"}')


async def read_entity(request: web.Request) -> web.Response:
    company = request[COMPANY_KEY]
    now = company.now()
    path_name = request.match_info["entity"].lower()
    entity_id = request.match_info["id"]
    served = ENTITY_PATHS.get(path_name)
    # A QBO entity without data here reads like one this company has none of (610).
    kind = served or EMPTY_BY_LOWER.get(path_name)
    if kind is None:
        return not_found(request.path, str(request.url), now, company.tz)
    entity = company.table(kind).get(entity_id) if served is not None else None
    if entity is None:
        deleted = entity_id in company.tombstones.get(kind, {})
        detail = (
            "Object Not Found : Another user has deleted this transaction."
            if deleted
            else f"Object Not Found : Something you're trying to use has been made inactive. "
            f"Check the fields with accounts, customers, items, vendors or employees. "
            f"({kind} {entity_id})"
        )
        return fault(
            400,
            "610",
            "Object Not Found",
            detail,
            fault_type="ValidationFault",
            now=now,
            tz=company.tz,
        )
    return raw_json(_envelope(kind, entity, company, format_millis(now, company.tz)))


def _unsupported(company: Company, now: float, detail: str) -> web.Response:
    return fault(
        400,
        "500",
        "Unsupported Operation",
        detail,
        fault_type="ValidationFault",
        now=now,
        tz=company.tz,
    )


async def unknown_path(request: web.Request) -> web.Response:
    company = request[COMPANY_KEY]
    return not_found(request.path, str(request.url), company.now(), company.tz)


async def write_entity(request: web.Request) -> web.Response:
    company = request[COMPANY_KEY]
    name = request.match_info["entity"].lower()
    if name not in ENTITY_PATHS and name not in EMPTY_BY_LOWER:
        return not_found(request.path, str(request.url), company.now(), company.tz)
    return _unsupported(
        company,
        company.now(),
        "Operation not supported by the emulator: it is read-only through the API. Use the "
        "bookkeeper actions under /_emulator/ to change data.",
    )


async def cdc(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    company = request[COMPANY_KEY]
    now = company.now()
    tz = company.tz
    entities_param = request.query.get("entities", "")
    changed_since = request.query.get("changedSince", "")
    if not entities_param.strip() or not changed_since.strip():
        missing = "entities" if not entities_param.strip() else "changedSince"
        return fault(
            400,
            "2020",
            "Required param missing, need to supply the required value for the API",
            f"Required parameter {missing} is missing in the request",
            fault_type="ValidationFault",
            now=now,
            tz=tz,
        )
    kinds: list[str] = []
    for raw in entities_param.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        kind = ENTITY_BY_LOWER.get(name)
        if kind is None:
            if name in EMPTY_BY_LOWER:
                continue
            return invalid_query(str(q.unknown_entity(raw.strip())), now, tz)
        if kind not in kinds:
            kinds.append(kind)
    try:
        since = parse_datetime(changed_since, tz)
    except ValueError:
        return invalid_query(
            f"QueryValidationError: invalid changedSince value '{changed_since}'", now, tz
        )
    oldest = now - timedelta(days=state.config.cdc_lookback_days).total_seconds()
    if since < oldest:
        return invalid_query(
            f"QueryValidationError: changedSince {changed_since} is more than "
            f"{state.config.cdc_lookback_days} days in the past (earliest allowed "
            f"{format_seconds(oldest, tz)})",
            now,
            tz,
        )
    found: list[tuple[float, int, int, bytes]] = []
    for order, kind in enumerate(kinds):
        for entity in company.table(kind).values():
            if entity.updated >= since:
                found.append(
                    (entity.updated, order, int(entity.id), entity.json_bytes(tz, company))
                )
        for tomb in company.tombstones.get(kind, {}).values():
            if tomb.deleted_at >= since:
                found.append((tomb.deleted_at, order, int(tomb.id), dumps(tomb.to_dict(tz))))
    found.sort(key=lambda item: item[:3])
    found = found[: state.config.cdc_max_objects]
    groups: list[bytes] = []
    for order, kind in enumerate(kinds):
        rows = [item[3] for item in found if item[1] == order]
        if rows:
            groups.append(
                b'{"%s":[%s],"startPosition":1,"maxResults":%d}'
                % (kind.encode(), b",".join(rows), len(rows))
            )
    inner = b",".join(groups) if groups else b"{}"
    time_text = format_millis(now, tz).encode()
    return raw_json(
        b'{"CDCResponse":[{"QueryResponse":[' + inner + b']}],"time":"' + time_text + b'"}'
    )


async def company_info(request: web.Request) -> web.Response:
    company = request[COMPANY_KEY]
    now = company.now()
    if request.match_info["id"] != company.realm_id:
        return fault(
            400,
            "610",
            "Object Not Found",
            "Object Not Found : the CompanyInfo id is the realm id",
            fault_type="ValidationFault",
            now=now,
            tz=company.tz,
        )
    address = {
        "Id": "1",
        "Line1": "2700 Coast Ave",
        "City": "Mountain View",
        "CountrySubDivisionCode": "CA",
        "PostalCode": "94043",
        "Country": company.country,
    }
    created = format_seconds(company.created, company.tz)
    info = {
        "CompanyName": company.name,
        "LegalName": company.name,
        "CompanyAddr": address,
        "CustomerCommunicationAddr": address,
        "LegalAddr": address,
        "PrimaryPhone": {},
        "CompanyStartDate": created[:10],
        "FiscalYearStartMonth": "January",
        "Country": company.country,
        "Email": {"Address": "books@example.com"},
        "WebAddr": {},
        "SupportedLanguages": "en",
        "NameValue": [
            {"Name": "NeoEnabled", "Value": "true"},
            {"Name": "CompanyType", "Value": "Other"},
            {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
            {"Name": "SubscriptionStatus", "Value": "SUBSCRIBED"},
            {"Name": "PayrollFeature", "Value": "false"},
            {"Name": "AccountantFeature", "Value": "false"},
        ],
        "domain": "QBO",
        "sparse": False,
        "Id": "1",
        "SyncToken": "1",
        "MetaData": {"CreateTime": created, "LastUpdatedTime": created},
    }
    return raw_json(dumps({"CompanyInfo": info, "time": format_millis(now, company.tz)}))


async def preferences(request: web.Request) -> web.Response:
    company = request[COMPANY_KEY]
    created = format_seconds(company.created, company.tz)
    prefs = {
        "CurrencyPrefs": {
            "MultiCurrencyEnabled": company.is_multicurrency,
            "HomeCurrency": {"value": company.home_currency},
        },
        "SalesFormsPrefs": {"DefaultTerms": {"value": "3"}},
        "domain": "QBO",
        "sparse": False,
        "Id": "1",
        "SyncToken": "0",
        "MetaData": {"CreateTime": created, "LastUpdatedTime": created},
    }
    return raw_json(dumps({"Preferences": prefs, "time": _time(request, company)}))


def add_routes(app: web.Application) -> None:
    base = "/v3/company/{realm}"
    app.router.add_route("GET", f"{base}/query", query)
    app.router.add_route("POST", f"{base}/query", query)
    app.router.add_route("GET", f"{base}/cdc", cdc)
    app.router.add_route("GET", f"{base}/companyinfo/{{id}}", company_info)
    app.router.add_route("GET", f"{base}/preferences", preferences)
    app.router.add_route("GET", f"{base}/{{entity}}/{{id}}", read_entity)
    app.router.add_route("POST", f"{base}/{{entity}}", write_entity)
    # Anything else under the company (after the gate: a token is still needed) is a 404.
    app.router.add_route("*", f"{base}/{{tail:.*}}", unknown_path)
