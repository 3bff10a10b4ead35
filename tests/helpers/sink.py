"""A real HTTP endpoint that records every POST and answers from a script: the webhook
receiver both emulators' tests deliver to."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass
class Received:
    body: bytes
    headers: dict[str, str]
    at: float


@dataclass
class WebhookSink:
    """Records every POST; ``respond(n)`` gives the status for the n-th (0-based; it is
    already in ``received`` when asked), ``delay(n)`` a pause before answering."""

    url: str
    received: list[Received] = field(default_factory=list)
    respond: Callable[[int], int] = lambda _n: 200
    delay: Callable[[int], float] = lambda _n: 0.0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_for(self, count: int, within: float = 5.0) -> list[Received]:
        async with asyncio.timeout(within):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.received


@asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink(url="")

    async def receive(request: web.Request) -> web.Response:
        n = len(sink.received)
        body = await request.read()
        sink.received.append(
            Received(body, dict(request.headers), asyncio.get_running_loop().time())
        )
        sink.arrived.set()
        pause = sink.delay(n)
        if pause:
            await asyncio.sleep(pause)
        return web.Response(status=sink.respond(n))

    app = web.Application()
    app.router.add_post("/hook", receive)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    sink.url = str(server.make_url("/hook"))
    try:
        yield sink
    finally:
        await server.close()
