"""The emulators' clock and calendar helpers.

All instants are POSIX seconds (``float``).  The clock can be moved forward by tests
(``/_emulator/clock``) so that token expiry and rate-limit windows can be exercised without
waiting.  Webhook retry back-off does not use it: that runs on the event loop with its own
time-scale knob.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timedelta, tzinfo
from datetime import time as time_of_day
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


# Where a pinned "today" starts: midday, local time, so that a run has about twelve hours
# before the tenant's date changes, whatever the hour it starts at.
PINNED_TIME_OF_DAY = time_of_day(12, 0)


class TenantClock:
    """A tenant's own clock (a company's, an organisation's): the emulator's, shifted so
    that the tenant's "today" can be pinned, in the tenant's time zone. A pinned day starts
    at :data:`PINNED_TIME_OF_DAY` and the clock runs on from there."""

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

    def set_today(self, day: date, at: time_of_day = PINNED_TIME_OF_DAY) -> None:
        """Shift the tenant's clock so that it is now ``day`` at ``at``, local time (a
        change of UTC offset between the two dates, such as daylight saving time, is
        accounted for)."""
        real = self.clock.time()
        target = datetime.combine(day, at, tzinfo=self.tz).timestamp()
        self.offset_seconds = target - real

    def move_to_zone(self, tz: tzinfo) -> None:
        """A new time zone; the tenant's local date and time of day stay what they were."""
        local = datetime.fromtimestamp(self.now(), self.tz)
        self.tz = tz
        self.set_today(local.date(), local.time())
