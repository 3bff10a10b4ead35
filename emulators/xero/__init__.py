"""A Xero emulator: OAuth 2.0 with ``/connections``, the Accounting API subset we use,
Xero's limits, and signed webhooks with the Intent to Receive.

>>> from emulators.xero import EmulatorConfig, create_app, STATE_KEY
"""

from __future__ import annotations

from emulators.xero.app import create_app
from emulators.xero.config import AppConfig, EmulatorConfig, OrganisationSpec
from emulators.xero.keys import STATE_KEY
from emulators.xero.state import EmulatorState
from emulators.xero.webhooks import sign, verify

__all__ = [
    "STATE_KEY",
    "AppConfig",
    "EmulatorConfig",
    "EmulatorState",
    "OrganisationSpec",
    "create_app",
    "sign",
    "verify",
]
