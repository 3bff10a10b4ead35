"""The ``python -m emulators.<provider>`` serve loop: bind, report the port, print the
addresses, run until SIGINT or SIGTERM, clean up."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web

from aicollect.handshake import report_ports


async def serve(
    app: web.Application, host: str, port: int, name: str, banner: Callable[[str], list[str]]
) -> None:
    """``banner(base_url)`` gives the lines printed under "<name> listening on <base>"."""
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        bound = runner.addresses[0][1] if runner.addresses else port
        report_ports(http=bound)
        base = f"http://{host}:{bound}"
        print(f"{name} listening on {base}", flush=True)
        for line in banner(base):
            print(f"  {line}", flush=True)
        await stop.wait()
        print(f"{name} stopping", flush=True)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()


def run(serving: Callable[[], Coroutine[Any, Any, None]], prog: str, host: str, port: int) -> int:
    """Run ``serving()`` to the end; a socket that cannot be bound is exit status 1 with one
    line on stderr."""
    try:
        asyncio.run(serving())
    except OSError as exc:
        print(f"{prog}: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    return 0
