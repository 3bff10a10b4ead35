"""Injected faults and Intuit's per-realm request limits.

All dice come from one seeded ``random.Random``, so a scenario with the same seed and the
same sequence of requests sees the same faults.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field, fields
from typing import Any

from emulators.qbo.config import EmulatorConfig

_SCOPES = frozenset({"api", "token"})


class FaultError(ValueError):
    """A fault setting that makes no sense."""


@dataclass(slots=True)
class Faults:
    seed: int = 0
    # API (and, with scope "token", token-endpoint) failures.
    error_rate: float = 0.0
    error_status: int = 500
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    scope: list[str] = field(default_factory=lambda: ["api"])
    realms: list[str] | None = None  # None: every realm
    # Throttling on top of the real limits.
    throttle_count: int = 0  # the next N API requests get 429
    throttle_rate: float = 0.0
    retry_after: int | None = None  # send Retry-After on 429 (Intuit's is unconfirmed)
    # The real limits (None = off).
    requests_per_minute: int | None = 500
    max_concurrent: int | None = 10
    # Webhooks.
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_reorder_rate: float = 0.0
    webhook_delay_rate: float = 0.0
    webhook_delay_seconds: float = 30.0

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FaultError(f"{name} must be a number from 0 to 1")
    return float(value)


def _non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultError(f"{name} must be a non-negative number")
    return float(value)


def _limit(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FaultError(f"{name} must be a positive integer or null (off)")
    return value


class FaultBox:
    """The current faults, their dice, and what they did."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.faults = self._defaults()
        self.rng = random.Random(self.faults.seed)
        self.injected: dict[str, int] = {}

    def _defaults(self) -> Faults:
        return Faults(
            seed=self.config.seed,
            requests_per_minute=self.config.requests_per_minute,
            max_concurrent=self.config.max_concurrent,
        )

    def reset(self) -> None:
        self.faults = self._defaults()
        self.rng = random.Random(self.faults.seed)
        self.injected = {}

    def update(self, changes: dict[str, Any]) -> Faults:
        """Apply a partial update; all or nothing."""
        new = Faults(**self.faults.to_json())
        known = {f.name for f in fields(Faults)}
        for key, value in changes.items():
            if key not in known:
                raise FaultError(f"unknown fault setting {key!r}")
            if key.endswith("_rate"):
                setattr(new, key, _rate(key, value))
            elif key in {"latency_ms", "latency_jitter_ms", "webhook_delay_seconds"}:
                setattr(new, key, _non_negative(key, value))
            elif key in {"requests_per_minute", "max_concurrent"}:
                setattr(new, key, _limit(key, value))
            elif key == "error_status":
                if not isinstance(value, int) or not 400 <= value <= 599:
                    raise FaultError("error_status must be an HTTP error status (400-599)")
                new.error_status = value
            elif key == "throttle_count":
                if not isinstance(value, int) or value < 0:
                    raise FaultError("throttle_count must be a non-negative integer")
                new.throttle_count = value
            elif key == "retry_after":
                new.retry_after = None if value is None else int(_non_negative(key, value))
            elif key == "seed":
                if not isinstance(value, int):
                    raise FaultError("seed must be an integer")
                new.seed = value
            elif key == "scope":
                if not isinstance(value, list) or not set(value) <= _SCOPES:
                    raise FaultError("scope must be a list of 'api' and/or 'token'")
                new.scope = [str(v) for v in value]
            elif key == "realms":
                if value is not None and not isinstance(value, list):
                    raise FaultError("realms must be a list of realm ids or null")
                new.realms = None if value is None else [str(v) for v in value]
        if "seed" in changes:
            self.rng = random.Random(new.seed)
        self.faults = new
        return new

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def count(self, what: str) -> None:
        self.injected[what] = self.injected.get(what, 0) + 1

    def applies(self, scope: str, realm_id: str | None) -> bool:
        faults = self.faults
        if scope not in faults.scope:
            return False
        return faults.realms is None or realm_id is None or realm_id in faults.realms

    def latency(self) -> float:
        faults = self.faults
        if faults.latency_ms <= 0 and faults.latency_jitter_ms <= 0:
            return 0.0
        jitter = self.rng.uniform(0, faults.latency_jitter_ms) if faults.latency_jitter_ms else 0.0
        return (faults.latency_ms + jitter) / 1000

    def forced_throttle(self) -> bool:
        faults = self.faults
        if faults.throttle_count > 0:
            faults.throttle_count -= 1
            return True
        return self.roll(faults.throttle_rate)


class RealmLimiter:
    """Intuit's per-realm limits: requests in a rolling minute and requests in flight."""

    def __init__(self) -> None:
        self._window: dict[str, deque[float]] = {}
        self._in_flight: dict[str, int] = {}

    def admit(
        self, realm_id: str, now: float, per_minute: int | None, concurrent: int | None
    ) -> bool:
        """Count the request in, or say it is over a limit (and count nothing)."""
        in_flight = self._in_flight.get(realm_id, 0)
        if concurrent is not None and in_flight >= concurrent:
            return False
        if per_minute is not None:
            window = self._window.setdefault(realm_id, deque())
            while window and window[0] <= now - 60:
                window.popleft()
            if len(window) >= per_minute:
                return False
            window.append(now)
        self._in_flight[realm_id] = in_flight + 1
        return True

    def release(self, realm_id: str) -> None:
        self._in_flight[realm_id] -= 1

    def in_flight(self, realm_id: str) -> int:
        return self._in_flight.get(realm_id, 0)

    def reset(self) -> None:
        self._window.clear()
        self._in_flight.clear()
