"""Serving the gateway on a socket, with a deadline for slow clients.

aiohttp has no deadline for reading a request: a client that sends its headers or its body
a byte every few seconds (slowloris) holds a connection, and a handler, for as long as it
likes. Its keep-alive timer cannot stand in for one: it closes idle keep-alive connections
after the same time, which must stay longer than the load balancer's idle timeout.

So every connection's protocol is wrapped in a ``SlowClientGuard``: the first byte of a
request starts a timer, and the request (headers and body) must have fully arrived before
it fires, or the connection is aborted. The ``read_deadline`` middleware tells the guard
where a request begins (headers parsed) and which body to wait for. ``GatewayServer``
serves an app this way; ``python -m gateway`` and the tests both use it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web
from aiohttp.streams import StreamReader

from aicollect.handshake import report_ports
from gateway.errors import problem
from gateway.keys import REQUEST_ID

log = logging.getLogger(__name__)

# How long an idle keep-alive connection stays open (aiohttp's run_app default); longer
# than common load balancers' idle timeouts, so the gateway never closes first.
KEEPALIVE_S = 75.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class SlowClientGuard(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, plus the request read deadline."""

    def __init__(
        self, inner: asyncio.Protocol, limit: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._inner = inner
        self._limit = limit
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._handling = False  # headers parsed; the app has the request
        self._body: StreamReader | None = None  # a body the deadline still waits for
        self._pending = False  # bytes of a next (pipelined) request came in meanwhile
        self.expired = False

    # asyncio.Protocol, delegated to aiohttp's protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is one without subclassing asyncio.Transport).
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(self._transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._body = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._handling and self._timer is None and not self.expired:
            self._arm()  # the first byte of a request
        elif self._handling and self._body is None:
            self._pending = True
        self._inner.data_received(data)
        if self._body is not None and self._body.is_eof():
            self._body = None
            self._disarm()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # told by the read_deadline middleware

    def request_started(self, body: StreamReader) -> None:
        """The headers are parsed; the deadline now waits only for ``body`` (if any)."""
        self._handling = True
        if body.is_eof():
            self._body = None
            self._disarm()
        else:
            self._body = body
            if self._timer is None:
                self._arm()

    def request_finished(self) -> None:
        """The app answered. A body it did not read keeps its deadline."""
        self._handling = False
        if self._body is not None and self._body.is_eof():
            self._body = None
            self._disarm()
        if self._timer is None and self._pending:
            self._arm()
        self._pending = False

    def _arm(self) -> None:
        self._timer = self._loop.call_later(self._limit, self._expire)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        self.expired = True
        peer = self._transport.get_extra_info("peername") if self._transport else None
        log.warning(
            "closed a slow client",
            extra={
                "peer": str(peer[0]) if isinstance(peer, tuple) else "",
                "phase": "body" if self._body is not None else "headers",
                "limit_seconds": self._limit,
            },
        )
        if self._transport is not None:
            self._transport.abort()


@web.middleware
async def read_deadline(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tells the connection's guard (if it runs under one) where a request begins and ends.

    A handler whose body read is cut off by the deadline gets the connection error; it is
    answered here as 408 (for the metrics: the client is already gone)."""
    transport = request.transport
    guard = transport.get_protocol() if transport is not None else None
    if not isinstance(guard, SlowClientGuard):
        return await handler(request)
    guard.request_started(request.content)
    try:
        return await handler(request)
    except ConnectionError:
        if not guard.expired:
            raise
        return problem(
            408, "REQUEST_TIMEOUT", "the request did not arrive in time", request[REQUEST_ID]
        )
    finally:
        guard.request_finished()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections each run under a ``SlowClientGuard``."""

    __slots__ = ("_host", "_limit", "_port", "_sock")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        limit: float,
        sock: socket.socket | None = None,
    ) -> None:
        super().__init__(runner)
        self._host = host
        self._port = port
        self._limit = limit
        self._sock = sock

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        server = self._runner.server
        assert server is not None
        limit = self._limit
        if self._sock is not None:
            self._server = await loop.create_server(
                lambda: SlowClientGuard(server(), limit, loop), sock=self._sock
            )
        else:
            self._server = await loop.create_server(
                lambda: SlowClientGuard(server(), limit, loop), self._host, self._port
            )
        sockets = self._server.sockets
        if sockets:
            self._port = sockets[0].getsockname()[1]

    @property
    def port(self) -> int:
        """The bound port (the kernel's pick when asked for port 0)."""
        return self._port


class GatewayServer:
    """Serves an app on host:port, every connection under a ``SlowClientGuard``.

    Port 0 binds a free port (``port`` tells which once started); ``sock`` serves on an
    already listening socket instead (the local stack hands the gateway one).
    """

    def __init__(
        self,
        app: web.Application,
        host: str,
        port: int,
        *,
        read_timeout: float,
        shutdown_timeout: float = 10.0,
        sock: socket.socket | None = None,
    ) -> None:
        self._runner = web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=KEEPALIVE_S,
            shutdown_timeout=shutdown_timeout,
        )
        self._host, self._port, self._read_timeout = host, port, read_timeout
        self._sock = sock

    async def start(self) -> None:
        await self._runner.setup()
        try:
            site = GuardedSite(
                self._runner, self._host, self._port, limit=self._read_timeout, sock=self._sock
            )
            await site.start()
        except BaseException:
            await self._runner.cleanup()
            raise
        self._port = site.port

    @property
    def port(self) -> int:
        """The port it serves on (the bound one, once started)."""
        return self._port

    async def close(self) -> None:
        """Stops accepting, lets requests in flight finish (up to the shutdown timeout)."""
        await self._runner.cleanup()


async def serve_until_signalled(
    app: web.Application,
    host: str,
    port: int,
    *,
    read_timeout: float,
    shutdown_timeout: float,
    sock: socket.socket | None = None,
) -> None:
    """``python -m gateway``: serves until SIGTERM or SIGINT, then drains and stops. Reports
    its port to whoever started it (aicollect/handshake.py)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = GatewayServer(
        app, host, port, read_timeout=read_timeout, shutdown_timeout=shutdown_timeout, sock=sock
    )
    await server.start()
    report_ports(http=server.port)
    try:
        await stop.wait()
    finally:
        await server.close()
