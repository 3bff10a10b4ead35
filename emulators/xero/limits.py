"""Xero's request limits: per organisation 60 a minute, 5 in flight and 5,000 a day (1,000
on the starter tier), and 10,000 a minute across the app.

"Requests are counted against a fixed window which will reset at different times for each
tenant": each window opens with the first request after the previous one closed.  A request
over a limit is refused with 429, ``X-Rate-Limit-Problem`` naming the limit and, for the
minute and day limits, ``Retry-After`` (seconds until the window closes); a refused request
counts against nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class Window:
    length: float
    started: float = 0.0
    used: int = 0

    def roll(self, now: float) -> None:
        if now >= self.started + self.length:
            self.started = now
            self.used = 0

    def retry_after(self, now: float) -> int:
        return max(1, math.ceil(self.started + self.length - now))


@dataclass(slots=True)
class Verdict:
    ok: bool
    problem: str | None = None  # minute | day | concurrent | appminute
    retry_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Limits:
    minute: int | None
    concurrent: int | None
    daily: int | None
    app_minute: int | None


class Limiter:
    def __init__(self) -> None:
        self._minute: dict[str, Window] = {}
        self._day: dict[str, Window] = {}
        self._app: dict[str, Window] = {}
        self._in_flight: dict[str, int] = {}

    def reset(self) -> None:
        self._minute.clear()
        self._day.clear()
        self._app.clear()
        self._in_flight.clear()

    def _windows(self, client_id: str, tenant_id: str | None, now: float) -> tuple[Window, ...]:
        app = self._app.setdefault(client_id, Window(60.0))
        app.roll(now)
        if tenant_id is None:
            return (app,)
        key = f"{client_id}/{tenant_id}"
        minute = self._minute.setdefault(key, Window(60.0))
        day = self._day.setdefault(key, Window(86_400.0))
        minute.roll(now)
        day.roll(now)
        return app, minute, day

    @staticmethod
    def _remaining(limit: int | None, window: Window) -> str | None:
        return None if limit is None else str(max(0, limit - window.used))

    def headers(
        self, client_id: str, tenant_id: str | None, limits: Limits, now: float
    ) -> dict[str, str]:
        """``X-DayLimit-Remaining``, ``X-MinLimit-Remaining``, ``X-AppMinLimit-Remaining``
        (only the app's for tenantless calls such as ``/connections``)."""
        windows = self._windows(client_id, tenant_id, now)
        out: dict[str, str] = {}
        pairs = [("X-AppMinLimit-Remaining", limits.app_minute, windows[0])]
        if tenant_id is not None:
            pairs += [
                ("X-MinLimit-Remaining", limits.minute, windows[1]),
                ("X-DayLimit-Remaining", limits.daily, windows[2]),
            ]
        for name, limit, window in pairs:
            remaining = self._remaining(limit, window)
            if remaining is not None:
                out[name] = remaining
        return out

    def admit(self, client_id: str, tenant_id: str | None, limits: Limits, now: float) -> Verdict:
        windows = self._windows(client_id, tenant_id, now)
        app = windows[0]
        if tenant_id is not None:
            minute, day = windows[1], windows[2]
            key = f"{client_id}/{tenant_id}"
            if limits.daily is not None and day.used >= limits.daily:
                return Verdict(False, "day", day.retry_after(now))
            if limits.minute is not None and minute.used >= limits.minute:
                return Verdict(False, "minute", minute.retry_after(now))
            if limits.concurrent is not None and self._in_flight.get(key, 0) >= limits.concurrent:
                return Verdict(False, "concurrent")
        if limits.app_minute is not None and app.used >= limits.app_minute:
            return Verdict(False, "appminute", app.retry_after(now))
        for window in windows:
            window.used += 1
        if tenant_id is not None:
            key = f"{client_id}/{tenant_id}"
            self._in_flight[key] = self._in_flight.get(key, 0) + 1
        return Verdict(True)

    def release(self, client_id: str, tenant_id: str) -> None:
        key = f"{client_id}/{tenant_id}"
        self._in_flight[key] -= 1

    def in_flight(self, client_id: str, tenant_id: str) -> int:
        return self._in_flight.get(f"{client_id}/{tenant_id}", 0)
