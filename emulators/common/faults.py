"""Injected faults: the settings every emulator shares, their checks and their dice.

Each setting is a dataclass field whose ``metadata["check"]`` turns a JSON value into the
setting (or raises :class:`FaultError`); a provider adds its own fields (the tenants faults
apply to, its limits) by subclassing :class:`Faults`.  All dice come from one seeded
``random.Random``, so a scenario with the same seed and the same sequence of requests sees
the same faults.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar

Check = Callable[[str, Any], Any]


class FaultError(ValueError):
    """A fault setting that makes no sense."""


def checked(check: Check) -> Mapping[str, Check]:
    """Field metadata naming the function that validates the field's JSON value."""
    return {"check": check}


def rate(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FaultError(f"{name} must be a number from 0 to 1")
    return float(value)


def non_negative(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise FaultError(f"{name} must be a non-negative number")
    return float(value)


def limit(name: str, value: Any) -> int | None:
    """A request limit: a positive integer, or None (off)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise FaultError(f"{name} must be a positive integer or null (off)")
    return value


def count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FaultError(f"{name} must be a non-negative integer")
    return value


def integer(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FaultError(f"{name} must be an integer")
    return value


def error_status(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise FaultError(f"{name} must be an HTTP error status (400-599)")
    return value


def optional_seconds(name: str, value: Any) -> int | None:
    return None if value is None else int(non_negative(name, value))


def id_list(what: str) -> Check:
    """A list of ids (of ``what``), or None for all of them."""

    def check(name: str, value: Any) -> list[str] | None:
        if value is not None and not isinstance(value, list):
            raise FaultError(f"{name} must be a list of {what} or null")
        return None if value is None else [str(v) for v in value]

    return check


def one_of(allowed: Collection[str]) -> Check:
    def check(name: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not set(value) <= set(allowed):
            choices = " and/or ".join(repr(a) for a in sorted(allowed))
            raise FaultError(f"{name} must be a list of {choices}")
        return [str(v) for v in value]

    return check


@dataclass(slots=True)
class Faults:
    """The fault settings both emulators have."""

    seed: int = field(default=0, metadata=checked(integer))
    # API (and, with scope "token", token-endpoint) failures.
    error_rate: float = field(default=0.0, metadata=checked(rate))
    error_status: int = field(default=500, metadata=checked(error_status))
    latency_ms: float = field(default=0.0, metadata=checked(non_negative))
    latency_jitter_ms: float = field(default=0.0, metadata=checked(non_negative))
    scope: list[str] = field(
        default_factory=lambda: ["api"], metadata=checked(one_of(("api", "token")))
    )
    # Throttling on top of the real limits.
    throttle_count: int = field(default=0, metadata=checked(count))  # the next N get 429
    throttle_rate: float = field(default=0.0, metadata=checked(rate))
    retry_after: int | None = field(default=None, metadata=checked(optional_seconds))
    # Webhooks.
    webhook_drop_rate: float = field(default=0.0, metadata=checked(rate))
    webhook_duplicate_rate: float = field(default=0.0, metadata=checked(rate))
    webhook_reorder_rate: float = field(default=0.0, metadata=checked(rate))
    webhook_delay_rate: float = field(default=0.0, metadata=checked(rate))
    webhook_delay_seconds: float = field(default=30.0, metadata=checked(non_negative))

    def targets(self) -> list[str] | None:
        """The tenants (realms, organisations) API faults are limited to; None: all."""
        return None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


F = TypeVar("F", bound=Faults)


class FaultBox(Generic[F]):
    """The current faults, their dice, and what they did."""

    def __init__(self, defaults: Callable[[], F]) -> None:
        self._defaults = defaults
        self.faults: F = defaults()
        self.rng = random.Random(self.faults.seed)
        self.injected: dict[str, int] = {}

    def reset(self) -> None:
        self.faults = self._defaults()
        self.rng = random.Random(self.faults.seed)
        self.injected = {}

    def update(self, changes: dict[str, Any]) -> F:
        """Apply a partial update; all or nothing."""
        known = {f.name: f for f in fields(self.faults)}
        values = self.faults.to_json()
        for key, value in changes.items():
            spec = known.get(key)
            if spec is None:
                raise FaultError(f"unknown fault setting {key!r}")
            values[key] = spec.metadata["check"](key, value)
        new = type(self.faults)(**values)
        if "seed" in changes:
            self.rng = random.Random(new.seed)
        self.faults = new
        return new

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def count(self, what: str) -> None:
        self.injected[what] = self.injected.get(what, 0) + 1

    def applies(self, scope: str, target: str | None) -> bool:
        faults = self.faults
        if scope not in faults.scope:
            return False
        targets = faults.targets()
        return targets is None or target is None or target in targets

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

    def status(self) -> dict[str, Any]:
        """What ``/_emulator/faults`` shows: the settings and what they injected."""
        return {**self.faults.to_json(), "injected": self.injected}
