"""The emulators' clock and calendar helpers.

All instants are POSIX seconds (``float``).  The clock can be moved forward by tests
(``/_emulator/clock``) so that token expiry and rate-limit windows can be exercised without
waiting.  Webhook retry back-off does not use it: that runs on the event loop with its own
time-scale knob.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, tzinfo
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


def start_of_day(day: date, tz: tzinfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def add_days(day: date, days: int) -> date:
    return day + timedelta(days=days)


class TenantClock:
    """A tenant's own clock (a company's, an organisation's): the emulator's, shifted by
    whole days so that the tenant's "today" can be pinned, in the tenant's time zone."""

    def __init__(self, clock: Clock, tz: tzinfo, today: date | None = None) -> None:
        self.clock = clock
        self.tz = tz
        self.offset_seconds = 0.0
        if today is not None:
            self.set_today(today)

    def now(self) -> float:
        """What the tenant's timestamps use."""
        return self.clock.time() + self.offset_seconds

    def today(self) -> date:
        """The local date of the tenant's clock."""
        return local_date(self.now(), self.tz)

    def set_today(self, day: date) -> None:
        """Shift the tenant's clock by whole days so that its local date is ``day``."""
        self.offset_seconds = 0.0
        self.offset_seconds = (day - self.today()).days * 86_400.0

    def move_to_zone(self, tz: tzinfo) -> None:
        """A new time zone; the tenant's today stays what it was."""
        today = self.today()
        self.tz = tz
        self.set_today(today)
