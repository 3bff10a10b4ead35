"""``python -m aicollect.balancer URL...``: a round-robin HTTP balancer in front of several
gateway replicas, the local stand-in for the load balancer production puts in front of
them (``aicollect run --replicas N``, the multi-replica test and benchmark).

Intuit delivers webhooks to one URL, one POST at a time per app, over a kept-alive
connection; a balancer that picked a backend per TCP connection would send them all to one
gateway. This one forwards each request to the next gateway in turn. A gateway that refuses
the connection (it is down) is skipped and the next one tried, as a load balancer's
passive health check does: the request never reached it. A gateway that fails after the
request was sent (killed mid-request) is answered with 502, so Intuit retries the delivery
and nothing it was told was received is lost. Bodies are buffered whole: a development
tool, not a production proxy.

It listens on the socket handed down in ``AICOLLECT_GATEWAY_LISTEN_FD`` (the stack binds
it, as it binds a gateway's), else on ``AICOLLECT_GATEWAY_HOST``/``AICOLLECT_GATEWAY_PORT``.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator, Iterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from aicollect.handshake import inherited_socket
from aicollect.rpc.server import wait_for_signal
from aicollect.settings import Settings

# Headers about one hop, never forwarded (RFC 9110, 7.6.1), and the length, which the
# forwarded body sets again.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    }
)
TIMEOUT = aiohttp.ClientTimeout(total=60)


def _forwarded(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    out: CIMultiDict[str] = CIMultiDict()
    for key, value in headers.items():
        if key.lower() not in HOP_BY_HOP:
            out.add(key, value)
    return out


def create_app(backends: list[str]) -> web.Application:
    """The balancer's application: every request goes to the next of ``backends``."""
    turn: Iterator[str] = itertools.cycle(backends)
    app = web.Application(client_max_size=16 * 1024 * 1024)
    session_key = web.AppKey("session", aiohttp.ClientSession)

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        # No decompression: bodies pass through as the gateway encoded them.
        app[session_key] = aiohttp.ClientSession(auto_decompress=False, timeout=TIMEOUT)
        yield
        await app[session_key].close()

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        headers = _forwarded(request.headers)
        session = app[session_key]
        for _ in backends:
            target = f"{next(turn)}{request.rel_url}"
            try:
                async with session.request(
                    request.method, target, headers=headers, data=body, allow_redirects=False
                ) as resp:
                    payload = await resp.read()
                    return web.Response(
                        status=resp.status, body=payload, headers=_forwarded(resp.headers)
                    )
            except aiohttp.ClientConnectorError:
                continue  # refused: this gateway is down, the request never reached it
            except (aiohttp.ClientError, TimeoutError):
                return web.Response(status=502, text="the gateway failed mid-request\n")
        return web.Response(status=502, text="no gateway is reachable\n")

    app.cleanup_ctx.append(session_ctx)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


async def serve(backends: list[str], settings: Settings) -> None:
    runner = web.AppRunner(create_app(backends), access_log=None)
    await runner.setup()
    sock = inherited_socket()
    site: web.BaseSite
    if sock is not None:
        site = web.SockSite(runner, sock)
    else:
        site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
    await site.start()
    try:
        await wait_for_signal()
    finally:
        await runner.cleanup()


def main(argv: list[str]) -> int:
    if not argv or not all(url.startswith("http://") for url in argv):
        print("usage: python -m aicollect.balancer http://HOST:PORT...", file=sys.stderr)
        return 2
    asyncio.run(serve([url.rstrip("/") for url in argv], Settings.from_env()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
