"""The reads the sync makes from QBO, every one through the core's ``Caller``.

The caller takes a slot in the realm's shared budget (payments first), refreshes the
token, retries 429 and 5xx with backoff and jitter, logs Intuit's errors with their
``intuit_tid``, and checks the kill switch and the connection's state before each call.
Queries are POSTed as ``application/text`` so a long ``Id IN (...)`` never meets a URL
length limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta

from services.integration.budget import Priority
from services.integration.providers.base import Caller, ChangeSet, Json, Page
from services.integration.providers.qbo.api import QboApi
from services.integration.providers.qbo.mapping import format_qbo_time, parse_qbo_time
from services.integration.tokens import ConnectionNotLive

MAX_RESULTS = 1000  # Intuit's ceiling for MAXRESULTS
ID_BATCH = 500  # ids per ``Id IN (...)`` query
# Intuit's queries on name lists answer active rows only unless the WHERE clause names
# ``Active``. A customer made inactive ("deleted" in QBO's UI) still has invoices, payments
# and placements, so every query the sync makes on a name list asks for both states.
NAME_LISTS = frozenset({"Customer"})
ANY_ACTIVE_STATE = "Active IN (true, false)"


def quote(value: str) -> str:
    """A QBO query string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def id_list(ids: Iterable[str]) -> str:
    return "(" + ",".join(quote(i) for i in ids) + ")"


def qbo_date(value: date) -> str:
    return quote(value.isoformat())


def qbo_datetime(value: datetime) -> str:
    return quote(format_qbo_time(value))


def overdue_invoices_where(today: date) -> str:
    """Candidates: an open balance and a due date before the company's today."""
    return f"Balance > '0' AND DueDate < {qbo_date(today)}"


def where_all_states(entity: str, where: str) -> str:
    """``where`` widened to inactive rows too when ``entity`` is a name list."""
    if entity not in NAME_LISTS:
        return where
    return f"{where} AND {ANY_ACTIVE_STATE}" if where else ANY_ACTIVE_STATE


class QboReader:
    """Reads for one tenant's realm at one priority."""

    def __init__(
        self,
        caller: Caller,
        api: QboApi,
        tenant_id: str,
        realm_id: str,
        priority: Priority,
    ) -> None:
        self._caller = caller
        self._api = api
        self.tenant_id = tenant_id
        self.realm_id = realm_id
        self.priority = priority
        self.calls = 0
        self.max_page = MAX_RESULTS
        self.ids_per_call = ID_BATCH
        self.pages_by_number = False  # STARTPOSITION: a backfill page from any row

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        body: str | None = None,
        content_type: str | None = None,
    ) -> Json:
        async def op(realm_id: str, token: str) -> Json:
            if realm_id != self.realm_id:
                raise ConnectionNotLive(
                    "the tenant's connection now points at another QuickBooks company"
                )
            return await self._api.request(
                method, realm_id, path, token, params=params, body=body, content_type=content_type
            )

        self.calls += 1
        return await self._caller.call(self.tenant_id, op, priority=self.priority)

    async def company_time(self) -> str:
        """QBO's current time for the company (``time`` of a CompanyInfo read)."""
        payload = await self._request("GET", f"companyinfo/{self.realm_id}")
        return str(payload.get("time") or "")

    async def query(self, statement: str) -> tuple[list[Json], str | None]:
        payload = await self._request(
            "POST", "query", body=statement, content_type="application/text"
        )
        response = payload.get("QueryResponse") or {}
        rows: list[Json] = []
        if isinstance(response, Mapping):
            for key, value in response.items():
                if isinstance(value, list) and key[:1].isupper():
                    rows = [row for row in value if isinstance(row, dict)]
                    break
        time = payload.get("time")
        return rows, str(time) if time else None

    async def pages(
        self,
        entity: str,
        where: str,
        *,
        order_by: str = "Id",
        start_position: int = 1,
        page_size: int = MAX_RESULTS,
    ) -> AsyncIterator[Page]:
        """``SELECT * FROM entity WHERE ... ORDERBY ...`` page by page, until a short page
        (inactive rows of a name list included)."""
        where = where_all_states(entity, where)
        position = start_position
        while True:
            statement = (
                f"SELECT * FROM {entity}"
                + (f" WHERE {where}" if where else "")
                + f" ORDERBY {order_by} STARTPOSITION {position} MAXRESULTS {page_size}"
            )
            rows, time = await self.query(statement)
            yield Page(rows, position, time)
            if len(rows) < page_size:
                return
            position += len(rows)

    # -- what the sync asks for (``EntityReader``) -----------------------------------------

    def changed_between(
        self, entity: str, since: datetime, until: datetime | None = None
    ) -> AsyncIterator[Page]:
        """What still exists of ``entity`` changed from ``since`` (to ``until``), by
        ``MetaData.LastUpdatedTime``. QBO compares it in whole seconds, so a bounded range
        is widened to whole seconds on both ends."""
        if until is None:
            where = f"MetaData.LastUpdatedTime >= {qbo_datetime(since)}"
        else:
            low = since.replace(microsecond=0)
            high = until.replace(microsecond=0) + (
                timedelta(seconds=1) if until.microsecond else timedelta(0)
            )
            where = (
                f"MetaData.LastUpdatedTime >= {qbo_datetime(low)} "
                f"AND MetaData.LastUpdatedTime <= {qbo_datetime(high)}"
            )
        return self.pages(entity, where)

    def overdue_between(self, after: date, through: date) -> AsyncIterator[Page]:
        """Open invoices due after ``after`` and by ``through`` (the newly-overdue sweep)."""
        where = f"Balance > '0' AND DueDate > {qbo_date(after)} AND DueDate <= {qbo_date(through)}"
        return self.pages("Invoice", where)

    def overdue_by_due_date(
        self, today: date, *, start: int = 1, page_size: int = MAX_RESULTS
    ) -> AsyncIterator[Page]:
        """Overdue invoices ordered by due date, then id (the preview)."""
        return self.pages(
            "Invoice",
            overdue_invoices_where(today),
            order_by="DueDate, Id",
            start_position=start,
            page_size=page_size,
        )

    async def overdue_invoices(self, today: date, start: int, size: int) -> Page:
        """One backfill page: overdue invoices (``overdue_invoices_where``), by id."""
        rows, time = await self.query(
            f"SELECT * FROM Invoice WHERE {overdue_invoices_where(today)} ORDERBY Id "
            f"STARTPOSITION {start} MAXRESULTS {size}"
        )
        return Page(rows, start, time)

    def unapplied_payments(self) -> AsyncIterator[Page]:
        """Every payment, by id, 1,000 a page: Intuit documents no filter on
        ``UnappliedAmt`` (the emulator refuses one, as for any field it does not know to
        be filterable), so the backfill keeps the payments that carry unapplied money
        itself. One query per 1,000 payments in the company."""
        return self.pages("Payment", "")

    def expect(self, entity: str, count: int) -> None:
        """Nothing to choose: QBO reads by ``Id IN`` lists of 500 whatever the count."""

    async def by_ids(self, entity: str, ids: Sequence[str], where: str = "") -> dict[str, Json]:
        """The entities with these ids that exist (deleted ones are simply absent; inactive
        customers are found)."""
        found: dict[str, Json] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), ID_BATCH):
            chunk = unique[start : start + ID_BATCH]
            condition = where_all_states(
                entity, f"Id IN {id_list(chunk)}" + (f" AND {where}" if where else "")
            )
            rows, _ = await self.query(
                f"SELECT * FROM {entity} WHERE {condition} MAXRESULTS {MAX_RESULTS}"
            )
            for row in rows:
                found[str(row.get("Id"))] = row
        return found

    async def changes_since(self, entities: Sequence[str], since: datetime) -> ChangeSet:
        payload = await self._request(
            "GET",
            "cdc",
            params={"entities": ",".join(entities), "changedSince": format_qbo_time(since)},
        )
        objects: dict[str, list[Json]] = {name: [] for name in entities}
        for block in payload.get("CDCResponse") or []:
            if not isinstance(block, Mapping):
                continue
            for response in block.get("QueryResponse") or []:
                if not isinstance(response, Mapping):
                    continue
                for key, value in response.items():
                    if isinstance(value, list):
                        objects.setdefault(key, []).extend(v for v in value if isinstance(v, dict))
        time = str(payload.get("time") or "")
        if not time:
            raise ValueError("a CDC response without its time")
        parse_qbo_time(time)  # a malformed time must not become a high-water mark
        return ChangeSet(objects, time)
