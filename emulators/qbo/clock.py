"""The emulator's clock and Intuit's timestamp formats.

All instants are POSIX seconds (``float``).  The clock can be moved forward by tests
(``/_emulator/clock``) so that token expiry, rate-limit windows and the CDC look-back can
be exercised without waiting.  Webhook retry back-off does not use it: that runs on the
event loop with its own time-scale knob.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo


class Clock:
    """Wall-clock time plus an offset that only ever grows."""

    def __init__(self) -> None:
        self._offset = 0.0

    def time(self) -> float:
        return time.time() + self._offset

    def time_ns(self) -> int:
        return time.time_ns() + int(self._offset * 1e9)

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds

    def reset(self) -> None:
        self._offset = 0.0


def zone(name: str) -> tzinfo:
    """An IANA zone; ``KeyError``-free: raises ``ValueError`` for unknown names."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def local_date(ts: float, tz: tzinfo) -> date:
    return datetime.fromtimestamp(ts, tz).date()


def format_seconds(ts: float, tz: tzinfo) -> str:
    """``2014-09-19T13:16:17-07:00``: the MetaData style."""
    return datetime.fromtimestamp(int(ts), tz).isoformat(timespec="seconds")


def format_millis(ts: float, tz: tzinfo) -> str:
    """``2015-07-24T10:38:50.010-07:00``: the response ``time`` style."""
    return datetime.fromtimestamp(ts, tz).isoformat(timespec="milliseconds")


def format_utc_nanos(ns: int) -> str:
    """``2025-09-10T21:31:25.179851517Z``: the CloudEvents ``time`` style."""
    seconds, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def format_utc_millis(ts: float) -> str:
    """``2025-09-08T20:52:31.657Z``: the current legacy ``lastUpdated`` style."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_datetime(text: str, tz: tzinfo) -> float:
    """Read a date or date-time the way QBO accepts them in queries and ``changedSince``.

    ``2015-03-01`` (midnight in the company's zone), ``2023-08-01T12:00:00`` (company zone),
    ``2015-12-23T09:00-07:00``, ``...Z`` and ``-0700`` offsets.
    """
    parsed = datetime.fromisoformat(text.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.timestamp()


def start_of_day(day: date, tz: tzinfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def add_days(day: date, days: int) -> date:
    return day + timedelta(days=days)
