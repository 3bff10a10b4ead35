"""Xero's fault settings: the shared ones, the organisations they apply to, and Xero's
real limits (changeable, or ``null`` for off)."""

from __future__ import annotations

from dataclasses import dataclass, field

from emulators.common.faults import FaultBox, Faults, checked, id_list, limit
from emulators.xero.config import EmulatorConfig


@dataclass(slots=True)
class XeroFaults(Faults):
    tenants: list[str] | None = field(default=None, metadata=checked(id_list("tenant ids")))
    minute_limit: int | None = field(default=60, metadata=checked(limit))
    concurrent_limit: int | None = field(default=5, metadata=checked(limit))
    daily_limit: int | None = field(default=5000, metadata=checked(limit))
    starter_daily_limit: int | None = field(default=1000, metadata=checked(limit))
    app_minute_limit: int | None = field(default=10_000, metadata=checked(limit))

    def targets(self) -> list[str] | None:
        return self.tenants


def fault_box(config: EmulatorConfig) -> FaultBox[XeroFaults]:
    return FaultBox(
        lambda: XeroFaults(
            seed=config.seed,
            minute_limit=config.minute_limit,
            concurrent_limit=config.concurrent_limit,
            daily_limit=config.daily_limit,
            starter_daily_limit=config.starter_daily_limit,
            app_minute_limit=config.app_minute_limit,
        )
    )
