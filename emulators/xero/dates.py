"""Xero's date formats.

* ``/Date(1573755038314+0000)/``: instants (``UpdatedDateUTC``) in UTC milliseconds, and
  calendar dates (``Date``, ``DueDate``) as midnight UTC of that date;
* ``2018-12-30T00:00:00``: the ``DateString`` / ``DueDateString`` companions;
* ``2019-11-14T18:10:38Z``: ``UpdatedDateUTCString``;
* ``2024-06-21T01:15:39.902``: webhook ``eventDateUtc`` (UTC, no ``Z``);
* ``2019-07-09T23:40:30.1833130``: ``/connections`` dates.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, tzinfo
from email.utils import parsedate_to_datetime
from typing import Final

from emulators.common.clock import zone

STRICT_MODIFIED_SINCE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?$")

# Organisation.Timezone values (Windows zone ids, upper case) -> IANA zones.
WINDOWS_ZONES: Final = {
    "NEWZEALANDSTANDARDTIME": "Pacific/Auckland",
    "AUSEASTERNSTANDARDTIME": "Australia/Sydney",
    "EAUSTRALIASTANDARDTIME": "Australia/Brisbane",
    "CENAUSTRALIASTANDARDTIME": "Australia/Adelaide",
    "WAUSTRALIASTANDARDTIME": "Australia/Perth",
    "GMTSTANDARDTIME": "Europe/London",
    "PACIFICSTANDARDTIME": "America/Los_Angeles",
    "EASTERNSTANDARDTIME": "America/New_York",
    "CENTRALSTANDARDTIME": "America/Chicago",
    "UTC": "UTC",
}


def org_zone(windows_name: str) -> tzinfo:
    try:
        return zone(WINDOWS_ZONES[windows_name])
    except KeyError as exc:
        raise ValueError(
            f"unknown Xero time zone {windows_name!r}; known: {sorted(WINDOWS_ZONES)}"
        ) from exc


def ms_instant(ts: float) -> str:
    return f"/Date({int(ts * 1000)}+0000)/"


def ms_date(day: date) -> str:
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return f"/Date({int(midnight.timestamp() * 1000)}+0000)/"


def date_string(day: date) -> str:
    return f"{day.isoformat()}T00:00:00"


def utc_string(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def connection_date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0"


def parse_modified_since(value: str) -> tuple[float, bool]:
    """(UTC seconds, whether it had Xero's own shape ``yyyy-mm-ddThh:mm:ss``).

    Other shapes read here: ISO 8601 with ``Z`` or an offset, and HTTP dates
    (``Tue, 03 Mar 2026 10:00:00 GMT``).  Raises ``ValueError`` for anything else.
    """
    text = value.strip()
    strict = bool(STRICT_MODIFIED_SINCE.match(text))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"unreadable If-Modified-Since {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp(), strict


def parse_day(value: str) -> date:
    return date.fromisoformat(value[:10])
