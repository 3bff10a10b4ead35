"""``python -m emulators.<provider>``: the shared options, secrets from the environment,
and the serve loop (bind, report the port, print the addresses, run until SIGINT or
SIGTERM, clean up)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

from aicollect.handshake import report_ports

C = TypeVar("C")


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


def base_parser(
    prog: str, description: str, *, port: int, access_token_ttl: int, secret_env: str
) -> tuple[argparse.ArgumentParser, argparse._ArgumentGroup]:
    """The options every emulator has (address, token lifetime, one app to register); the
    app group is returned for the provider's webhook options."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=port, help="port (0 picks a free one)")
    parser.add_argument(
        "--access-token-ttl",
        type=int,
        default=access_token_ttl,
        help="access token lifetime in seconds",
    )
    app = parser.add_argument_group("register one app at start-up")
    app.add_argument("--client-id")
    app.add_argument("--client-secret", help=f"the app's client secret (or ${secret_env})")
    app.add_argument(
        "--redirect-uri", action="append", default=[], help="allowed redirect URI (repeatable)"
    )
    app.add_argument("--webhook-url", help="where this app's webhooks are POSTed")
    return parser, app


def secret(flag_value: str | None, env: str, flag: str) -> str:
    """A secret from its flag or, better (a command line is visible to every user), from
    the environment; ``ValueError`` when neither gives one."""
    value = flag_value or os.environ.get(env)
    if not value:
        raise ValueError(f"{flag} (or ${env}) is required with --client-id")
    return value


def main(
    argv: list[str] | None,
    parser: argparse.ArgumentParser,
    configure: Callable[[argparse.Namespace], C],
    serving: Callable[[C], Coroutine[Any, Any, None]],
) -> int:
    """Parse, configure (a ``ValueError`` is exit status 2 with the message), serve."""
    args = parser.parse_args(argv)
    try:
        config = configure(args)
    except ValueError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    return run(lambda: serving(config), parser.prog, args.host, args.port)
