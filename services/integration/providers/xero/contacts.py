"""How the reader reads the contacts the sync needs: the cheaper of two ways.

By ids: ``GET /Contacts?IDs=...``, 40 ids a call. Or the organisation's contacts in pages
of 1,000 (``page``, ``pageSize=1000``, ``order=UpdatedDateUTC ASC``, ``includeArchived=true``,
as the poll's sweep reads them), keeping the rows for the rest of the reader's life (a
backfill run, a confirmation, one poll), so that later reads of the same reader find
their contacts there without a call.

A read that needs more than one ``IDs`` list first reads page 1 (once per reader): its
``pagination`` says how many pages there are (``pageCount``). When the pages still to
read are fewer than the ``IDs`` lists still needed, every page is read; otherwise the ids
are read as before (the first page's rows are kept either way, and what they hold is not
read again). An id the pages do not hold (a contact created after its page was read, or
one moved past the position already read by an edit, since the order is by update time)
is read by ids, so nothing the pages miss is lost. Pages are never read for an
organisation of more than ``MAX_PAGES`` pages, which bounds what is kept in memory; and
only the fields the mapping reads are kept (``facts.CONTACT_FIELDS``).

Without ``pagination`` in the answer a short first page is the whole list; a full one
leaves the page count unknown, and the ids are read by ``IDs`` lists.

A caller that reads its contacts in many small reads (a confirmation places its
candidates 500 at a time, each read needing some hundreds of contacts) says first how
many distinct contacts the whole run will need (``expect``): the choice is then made
once, at the first read, for that many, as if they were read together. Without it each
read would choose for itself, and an organisation with more pages than one read's
``IDs`` lists would be read by ids however many reads follow.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from services.integration.providers.xero import facts

log = logging.getLogger(__name__)

Json = dict[str, Any]

PAGE_SIZE = 1000  # Xero's largest pageSize
# At most this many pages are read and kept (25,000 contacts); a larger organisation's
# contacts are read by ids.
MAX_PAGES = 25

Get = Callable[[str, Mapping[str, str]], Awaitable[dict[str, Any]]]
ByIds = Callable[[Sequence[str]], Awaitable[dict[str, Json]]]


def id_lists(count: int, per_list: int) -> int:
    return -(-count // per_list)


class ContactPages:
    """The organisation's contacts read page by page, for one reader."""

    def __init__(self, get: Get, by_ids: ByIds, ids_per_list: int) -> None:
        self._get = get
        self._by_ids = by_ids
        self._per_list = ids_per_list
        self._rows: dict[str, Json] = {}  # lower-case ContactID -> the fields we map
        self._pages_read = 0
        self._page_count: int | None = None  # unknown until page 1 is read
        self._probed = False
        self._complete = False
        # Contacts the reader's whole run will need (``expect``), until the choice is made.
        self._expected = 0

    def expect(self, count: int) -> None:
        """The run will read about ``count`` distinct contacts, a few at a time."""
        self._expected = max(self._expected, count)

    async def read(self, ids: Sequence[str]) -> dict[str, Json]:
        """The contacts with these ids that exist (archived ones included)."""
        found: dict[str, Json] = {}
        missing = self._take(ids, found)
        if missing:
            # The run's expected need, if told, counts once: at the first read that misses.
            need, self._expected = max(len(missing), self._expected), 0
        else:
            need = 0
        if not self._complete and id_lists(need, self._per_list) > 1:
            if not self._probed:
                await self._read_page(1)
                before = len(missing)
                missing = self._take(missing, found)
                need -= before - len(missing)
            if self._worth_reading_all(need):
                log.info(
                    "reading the organisation's contacts in pages",
                    extra={"pages": self._page_count, "contacts_missing": need},
                )
                while not self._complete and self._pages_read < MAX_PAGES:
                    await self._read_page(self._pages_read + 1)
                missing = self._take(missing, found)
        if missing:
            found.update(await self._by_ids(missing))
        return found

    def _take(self, ids: Sequence[str], found: dict[str, Json]) -> list[str]:
        """Moves the ids the pages hold into ``found``; the others, in order."""
        missing = []
        for contact_id in ids:
            row = self._rows.get(contact_id.lower())
            if row is None:
                missing.append(contact_id)
            else:
                found[contact_id] = row
        return missing

    def _worth_reading_all(self, missing: int) -> bool:
        if self._complete or self._page_count is None or self._page_count > MAX_PAGES:
            return False
        return self._page_count - self._pages_read < id_lists(missing, self._per_list)

    async def _read_page(self, page: int) -> None:
        params = {
            "page": str(page),
            "pageSize": str(PAGE_SIZE),
            "order": "UpdatedDateUTC ASC",
            "includeArchived": "true",
        }
        payload = await self._get("Contacts", params)
        self._probed = True
        self._pages_read = page
        rows = payload.get("Contacts")
        listed = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        for row in listed:
            contact_id = facts.entity_id(row)
            if contact_id:
                self._rows[contact_id.lower()] = {
                    k: v for k, v in row.items() if k in facts.CONTACT_FIELDS
                }
        pagination = payload.get("pagination")
        count = pagination.get("pageCount") if isinstance(pagination, dict) else None
        if isinstance(count, int) and count >= 0:
            self._page_count = count  # the latest answer's (contacts may have been added)
        elif len(listed) < PAGE_SIZE:
            self._page_count = page
        if len(listed) < PAGE_SIZE or (self._page_count is not None and page >= self._page_count):
            self._complete = True
