"""Intuit's timestamp formats; the clock itself is shared (``emulators.common.clock``)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


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
