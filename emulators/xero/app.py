"""The Xero emulator's aiohttp application factory."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

from aiohttp import web

from emulators.xero import api, control, identity
from emulators.xero.config import EmulatorConfig
from emulators.xero.keys import STATE_KEY
from emulators.xero.state import EmulatorState


async def _add_correlation_id(request: web.Request, response: web.StreamResponse) -> None:
    """Xero answers API calls with a correlation id support asks for."""
    if request.path.startswith(api.PREFIX) or request.path.lower().startswith("/connections"):
        response.headers["Xero-Correlation-Id"] = secrets.token_hex(16)


async def _background(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]
    await state.webhooks.start()
    yield
    await state.webhooks.stop()


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """A fresh emulator; its state is ``app[STATE_KEY]``."""
    config = config or EmulatorConfig()
    app = web.Application(middlewares=[api.api_gate, control.errors])
    app[STATE_KEY] = EmulatorState(config)
    identity.add_routes(app)
    api.add_routes(app)
    control.add_routes(app)
    app.on_response_prepare.append(_add_correlation_id)
    app.cleanup_ctx.append(_background)
    return app
