"""aiohttp keys shared by the emulator's route modules."""

from __future__ import annotations

from aiohttp import web

from emulators.qbo.books import Company
from emulators.qbo.state import EmulatorState

STATE_KEY = web.AppKey("aicollect_emulator_state", EmulatorState)
COMPANY_KEY = web.RequestKey("aicollect_emulator_company", Company)
