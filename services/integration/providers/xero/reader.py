"""The reads the sync makes from Xero, every one through the core's ``Caller``.

The caller takes a slot in the organisation's shared budget (60 a minute, 5 at once,
5,000 a day; payments and webhooks first), refreshes the grant's token, retries 429 and
5xx, and checks the kill switch and the connection's state before each call. The core
speaks its canonical entity names (``Invoice``, ``Payment``, ``CreditMemo``,
``Customer``); this reader turns them into Xero's resources. Xero has no change feed:
``changes_since`` is one ``If-Modified-Since`` sweep of each resource, paged; ``Payment``
sweeps Payments, Overpayments and Prepayments (all money a contact paid).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from services.integration.budget import Priority
from services.integration.providers.base import Caller, ChangeSet, Json, Page
from services.integration.providers.xero import facts
from services.integration.providers.xero.api import XeroApi, XeroNotFound
from services.integration.providers.xero.contacts import ContactPages
from services.integration.tokens import ConnectionNotLive

log = logging.getLogger(__name__)

MAX_PAGE = 1000  # Xero's largest pageSize
ID_BATCH = 40  # ids per ``IDs=`` list (keeps the URL well under 2 KB)
# canonical entity -> (Xero resource, whether it takes IDs=, extra filter)
RESOURCES: dict[str, tuple[str, bool, str]] = {
    "Invoice": ("Invoices", True, 'Type=="ACCREC"'),
    # Sales payments only (a bill's payment is not ours to match); deleted ones included.
    "Payment": ("Payments", False, 'PaymentType=="ACCRECPAYMENT"'),
    "CreditMemo": ("CreditNotes", False, 'Type=="ACCRECCREDIT"'),
    "Customer": ("Contacts", True, ""),
    # Read with ``Payment``: a receive overpayment or prepayment is money a contact paid
    # (allocated or not, voided or deleted too: the poll must see it spent or gone).
    # (``AR...`` is the older spelling of the same types.)
    "Overpayment": (
        "Overpayments",
        False,
        '(Type=="RECEIVE-OVERPAYMENT" OR Type=="AROVERPAYMENT")',
    ),
    "Prepayment": ("Prepayments", False, '(Type=="RECEIVE-PREPAYMENT" OR Type=="ARPREPAYMENT")'),
}
# What the poll sweeps for a canonical entity (Xero spreads money paid over three).
SWEEPS: dict[str, tuple[str, ...]] = {"Payment": ("Payment", "Overpayment", "Prepayment")}
OPEN_RECEIVABLE = 'Type=="ACCREC" AND Status=="AUTHORISED" AND AmountDue>0'
# Organisation.Timezone (Windows zone ids, upper case, no spaces) -> IANA zones.
WINDOWS_ZONES = {
    "NEWZEALANDSTANDARDTIME": "Pacific/Auckland",
    "AUSEASTERNSTANDARDTIME": "Australia/Sydney",
    "EAUSTRALIASTANDARDTIME": "Australia/Brisbane",
    "CENAUSTRALIASTANDARDTIME": "Australia/Adelaide",
    "AUSCENTRALSTANDARDTIME": "Australia/Darwin",
    "TASMANIASTANDARDTIME": "Australia/Hobart",
    "WAUSTRALIASTANDARDTIME": "Australia/Perth",
    "GMTSTANDARDTIME": "Europe/London",
    "GREENWICHSTANDARDTIME": "Atlantic/Reykjavik",
    "WEUROPESTANDARDTIME": "Europe/Berlin",
    "ROMANCESTANDARDTIME": "Europe/Paris",
    "SOUTHAFRICASTANDARDTIME": "Africa/Johannesburg",
    "SINGAPORESTANDARDTIME": "Asia/Singapore",
    "PACIFICSTANDARDTIME": "America/Los_Angeles",
    "MOUNTAINSTANDARDTIME": "America/Denver",
    "CENTRALSTANDARDTIME": "America/Chicago",
    "EASTERNSTANDARDTIME": "America/New_York",
    "ATLANTICSTANDARDTIME": "America/Halifax",
    "UTC": "UTC",
}


def org_zone(windows_name: str) -> ZoneInfo:
    """The organisation's zone; UTC (logged) for a name we do not know."""
    name = WINDOWS_ZONES.get(windows_name.replace(" ", "").upper())
    try:
        return ZoneInfo(name or "UTC")
    except ZoneInfoNotFoundError:
        name = None
    finally:
        if name is None:
            log.warning("unknown Xero time zone; using UTC", extra={"timezone": windows_name})
    return ZoneInfo("UTC")


def xero_date(day: date) -> str:
    return f"DateTime({day.year},{day.month:02d},{day.day:02d})"


def modified_since(value: datetime) -> str:
    """``If-Modified-Since`` as Xero documents it: UTC, whole seconds, no zone."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _rows(payload: Mapping[str, Any], resource: str) -> list[Json]:
    rows = payload.get(resource)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


class XeroReader:
    """Reads for one tenant's organisation at one priority."""

    def __init__(
        self, caller: Caller, api: XeroApi, tenant_id: str, realm_id: str, priority: Priority
    ) -> None:
        self._caller = caller
        self._api = api
        self.tenant_id = tenant_id
        self.realm_id = realm_id
        self.priority = priority
        self.calls = 0
        self.max_page = MAX_PAGE
        self.ids_per_call = ID_BATCH
        self.pages_by_number = True  # page=n: a backfill page begins at a multiple of its size
        # Contacts by ``IDs`` lists or in pages, whichever takes fewer calls (contacts.py).
        self.contacts = ContactPages(
            self.get, lambda ids: self._by_id_lists("Customer", ids, ""), ID_BATCH
        )

    async def get(
        self,
        resource: str,
        params: Mapping[str, str] | None = None,
        *,
        since: datetime | None = None,
    ) -> dict[str, Any]:
        async def op(realm_id: str, token: str) -> dict[str, Any]:
            if realm_id != self.realm_id:
                raise ConnectionNotLive(
                    "the tenant's connection now points at another organisation"
                )
            return await self._api.get(
                realm_id,
                resource,
                token,
                params=params,
                modified_since=modified_since(since) if since is not None else None,
            )

        self.calls += 1
        return await self._caller.call(self.tenant_id, op, priority=self.priority)

    async def pages(
        self,
        entity: str,
        where: str = "",
        *,
        order: str = "UpdatedDateUTC ASC",
        since: datetime | None = None,
        start: int = 1,
        page_size: int = MAX_PAGE,
    ) -> AsyncIterator[Page]:
        """A resource page by page (``page``/``pageSize``) until a short page. ``start``
        is a row position (1-based); it must fall on a page boundary of ``page_size``."""
        resource, _, scope = RESOURCES[entity]
        condition = " AND ".join(c for c in (scope, where) if c)
        page = (max(1, start) - 1) // page_size + 1
        while True:
            params = {"page": str(page), "pageSize": str(page_size), "order": order}
            if condition:
                params["where"] = condition
            if entity == "Customer":
                params["includeArchived"] = "true"
            payload = await self.get(resource, params, since=since)
            rows = _rows(payload, resource)
            yield Page(rows, (page - 1) * page_size + 1, str(payload.get("DateTimeUTC") or ""))
            if len(rows) < page_size:
                return
            page += 1

    # -- what the sync asks for (``EntityReader``) -------------------------------------------

    async def company_time(self) -> str:
        """Xero's clock (the answer's ``DateTimeUTC``) in the organisation's time zone
        (``Organisation.Timezone``), as ISO-8601 with its offset: its date is the
        organisation's today."""
        payload = await self.get("Organisation")
        orgs = _rows(payload, "Organisations")
        zone = org_zone(str(orgs[0].get("Timezone") or "") if orgs else "")
        stamp = str(payload.get("DateTimeUTC") or "")
        now = facts.parse_time(stamp) if stamp else datetime.now(UTC)
        return now.astimezone(zone).isoformat(timespec="milliseconds")

    def expect(self, entity: str, count: int) -> None:
        """Contacts: the pages-or-ids choice is made once for ``count`` (contacts.py)."""
        if entity == "Customer":
            self.contacts.expect(count)

    async def by_ids(self, entity: str, ids: Sequence[str], where: str = "") -> dict[str, Json]:
        """The records with these ids (a deleted or voided one comes back with its
        status; one Xero no longer knows is absent)."""
        takes_ids = RESOURCES[entity][1]
        unique = [i for i in dict.fromkeys(ids) if i]
        if entity == "Customer" and not where:
            return await self.contacts.read(unique)
        if takes_ids:
            return await self._by_id_lists(entity, unique, where)
        found: dict[str, Json] = {}
        for record_id in unique:
            # A payment id may be an overpayment's or a prepayment's: each kind in turn.
            for swept in SWEEPS.get(entity, (entity,)):
                kind = RESOURCES[swept][0]
                try:
                    payload = await self.get(f"{kind}/{record_id}")
                except XeroNotFound:
                    continue
                for row in _rows(payload, kind):
                    found[facts.entity_id(row)] = row
                break
        return found

    async def _by_id_lists(self, entity: str, ids: Sequence[str], where: str) -> dict[str, Json]:
        """``GET /{resource}?IDs=...``, ``ID_BATCH`` ids a call."""
        resource = RESOURCES[entity][0]
        found: dict[str, Json] = {}
        for first in range(0, len(ids), ID_BATCH):
            params = {"IDs": ",".join(ids[first : first + ID_BATCH])}
            if where:
                params["where"] = where
            if entity == "Invoice":  # paged: payments and credits come with it
                params.update(page="1", pageSize=str(ID_BATCH))
            payload = await self.get(resource, params)
            for row in _rows(payload, resource):
                found[facts.entity_id(row)] = row
        return found

    async def changes_since(self, entities: Sequence[str], since: datetime) -> ChangeSet:
        """Every record of ``entities`` changed since ``since`` (deleted payments and
        voided or deleted invoices included), one paged ``If-Modified-Since`` sweep per
        resource. The answer's time is Xero's clock at the first read (the next mark)."""
        objects: dict[str, list[Json]] = {name: [] for name in entities}
        first_time = ""
        for entity in entities:
            for swept in SWEEPS.get(entity, (entity,)):
                async for page in self.pages(swept, since=since):
                    first_time = first_time or (page.time or "")
                    objects[entity].extend(page.rows)
        if not first_time:
            raise ValueError("a Xero answer without its DateTimeUTC")
        return ChangeSet(objects, facts.format_time(facts.parse_time(first_time)))

    async def changed_between(
        self, entity: str, since: datetime, until: datetime | None = None
    ) -> AsyncIterator[Page]:
        for swept in SWEEPS.get(entity, (entity,)):
            async for page in self.pages(swept, since=since):
                if until is None:
                    yield page
                    continue
                rows = [r for r in page.rows if (when := facts.updated(r)) is None or when <= until]
                yield Page(rows, page.start_position, page.time)

    def overdue_between(self, after: date, through: date) -> AsyncIterator[Page]:
        where = (
            f"{OPEN_RECEIVABLE} AND DueDate>{xero_date(after)} AND DueDate<={xero_date(through)}"
        )
        return self.pages("Invoice", where, order="DueDate ASC")

    def overdue_by_due_date(
        self, today: date, *, start: int = 1, page_size: int = MAX_PAGE
    ) -> AsyncIterator[Page]:
        where = f"{OPEN_RECEIVABLE} AND DueDate<{xero_date(today)}"
        return self.pages(
            "Invoice", where, order="DueDate ASC, InvoiceID ASC", start=start, page_size=page_size
        )

    async def unapplied_payments(self) -> AsyncIterator[Page]:
        """Receive overpayments and prepayments still ``AUTHORISED`` (credit left to
        allocate; ``PAID`` ones are spent, ``VOIDED`` ones gone): one call each, more only
        past 1,000 open credits of a kind."""
        for entity in ("Overpayment", "Prepayment"):
            async for page in self.pages(entity, 'Status=="AUTHORISED"'):
                yield page

    async def overdue_invoices(self, today: date, start: int, size: int) -> Page:
        """One backfill page: open receivables due before the organisation's today, by id.
        Xero pages by number: ``start`` must begin a page of ``size`` rows. One call; the
        answer's ``pagination.itemCount`` (how many invoices match now) comes with it."""
        if (start - 1) % size:
            raise ValueError(f"row {start} does not begin a page of {size}")
        where = f"{OPEN_RECEIVABLE} AND DueDate<{xero_date(today)}"
        params = {
            "page": str((start - 1) // size + 1),
            "pageSize": str(size),
            "where": where,
            "order": "InvoiceID ASC",
        }
        payload = await self.get("Invoices", params)
        pagination = payload.get("pagination")
        count = pagination.get("itemCount") if isinstance(pagination, dict) else None
        return Page(
            _rows(payload, "Invoices"),
            start,
            str(payload.get("DateTimeUTC") or ""),
            count if isinstance(count, int) else None,
        )
