"""aiohttp keys shared by the emulator's route modules."""

from __future__ import annotations

from aiohttp import web

from aicollect.emulator.books import Company
from aicollect.emulator.state import EmulatorState

STATE_KEY = web.AppKey("aicollect_emulator_state", EmulatorState)
COMPANY_KEY = web.RequestKey("aicollect_emulator_company", Company)
