"""The emulator's aiohttp application factory."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

from aiohttp import web

from emulators.qbo import api, authorize, control
from emulators.qbo.config import EmulatorConfig
from emulators.qbo.keys import STATE_KEY
from emulators.qbo.state import EmulatorState


async def _add_intuit_tid(request: web.Request, response: web.StreamResponse) -> None:
    """Intuit puts a transaction id on every response; support asks for it."""
    response.headers["intuit_tid"] = f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"


async def _background(app: web.Application) -> AsyncIterator[None]:
    state = app[STATE_KEY]
    await state.webhooks.start()
    prerender = asyncio.get_running_loop().create_task(state.prerender(), name="prerender")
    yield
    prerender.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await prerender
    await state.webhooks.stop()


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """A fresh emulator; its state is ``app[STATE_KEY]``."""
    config = config or EmulatorConfig()
    app = web.Application(middlewares=[api.api_gate, control.errors])
    app[STATE_KEY] = EmulatorState(config)
    authorize.add_routes(app)
    api.add_routes(app)
    control.add_routes(app)
    app.on_response_prepare.append(_add_intuit_tid)
    app.cleanup_ctx.append(_background)
    return app
