"""An Intuit emulator: OAuth 2.0, the QBO Accounting API v3 subset we use, signed webhooks.

>>> from emulators.qbo import EmulatorConfig, create_app, STATE_KEY
"""

from __future__ import annotations

from emulators.qbo.app import create_app
from emulators.qbo.config import AppConfig, CompanySpec, EmulatorConfig
from emulators.qbo.keys import STATE_KEY
from emulators.qbo.state import EmulatorState
from emulators.qbo.webhooks import sign, verify

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
