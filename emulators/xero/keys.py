"""aiohttp keys shared by the Xero emulator's route modules."""

from __future__ import annotations

from aiohttp import web

from emulators.xero.books import Organisation
from emulators.xero.oauth import Grant
from emulators.xero.state import EmulatorState

STATE_KEY = web.AppKey("aicollect_xero_emulator_state", EmulatorState)
ORG_KEY = web.RequestKey("aicollect_xero_emulator_org", Organisation)
GRANT_KEY = web.RequestKey("aicollect_xero_emulator_grant", Grant)
