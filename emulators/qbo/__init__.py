"""An Intuit emulator: OAuth 2.0, the QBO Accounting API v3 subset we use, signed webhooks.

>>> from aicollect.emulator import EmulatorConfig, create_app, STATE_KEY
"""

from __future__ import annotations

from aicollect.emulator.app import create_app
from aicollect.emulator.config import AppConfig, CompanySpec, EmulatorConfig
from aicollect.emulator.keys import STATE_KEY
from aicollect.emulator.state import EmulatorState
from aicollect.emulator.webhooks import sign, verify

__all__ = [
    "STATE_KEY",
    "AppConfig",
    "CompanySpec",
    "EmulatorConfig",
    "EmulatorState",
    "create_app",
    "sign",
    "verify",
]
