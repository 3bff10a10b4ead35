"""Intuit's fault settings (the shared ones plus realms and the per-realm limits) and
Intuit's per-realm request limits."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from emulators.common.faults import FaultBox, Faults, checked, id_list, limit
from emulators.qbo.config import EmulatorConfig


@dataclass(slots=True)
class QboFaults(Faults):
    realms: list[str] | None = field(default=None, metadata=checked(id_list("realm ids")))
    # The real per-realm limits (None = off).
    requests_per_minute: int | None = field(default=500, metadata=checked(limit))
    max_concurrent: int | None = field(default=10, metadata=checked(limit))

    def targets(self) -> list[str] | None:
        return self.realms


def fault_box(config: EmulatorConfig) -> FaultBox[QboFaults]:
    return FaultBox(
        lambda: QboFaults(
            seed=config.seed,
            requests_per_minute=config.requests_per_minute,
            max_concurrent=config.max_concurrent,
        )
    )


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
