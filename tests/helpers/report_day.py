"""The reconciliation report day a test asks for, chosen so that it never straddles midnight.

A test that records money "three hours ago" and flags it now would find the two in different
UTC days whenever it runs shortly after midnight UTC. Asking for the day in a zone where it is
now about noon puts everything from eleven hours ago to eleven hours ahead in one report.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def noon_report_day(now: datetime | None = None) -> tuple[str, str]:
    """``(time_zone, day)``: an IANA zone in which ``now`` is within the hour around noon, and
    the ISO date of that local day."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    offset = 12 - moment.hour  # hours east of UTC; between -11 and +12, all of which exist
    # POSIX-style names: "Etc/GMT-5" is five hours *east* of UTC.
    zone = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"
    return zone, moment.astimezone(ZoneInfo(zone)).date().isoformat()
