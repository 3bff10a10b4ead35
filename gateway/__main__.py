"""``python -m gateway``: the public HTTP gateway."""

from __future__ import annotations

import sys

from aicollect import eventloop, logs
from aicollect.handshake import inherited_socket
from aicollect.settings import GATEWAY_REQUIRES, MissingSettingError, Settings
from gateway.app import create_app
from gateway.server import serve_until_signalled


def main() -> int:
    settings = Settings.from_env()
    logs.configure("gateway", level=settings.log_level, fmt=settings.log_format)
    try:
        settings.require(*GATEWAY_REQUIRES)
    except MissingSettingError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    eventloop.run(
        serve_until_signalled(
            create_app(settings),
            settings.gateway_host,
            settings.gateway_port,
            read_timeout=settings.gateway_read_timeout_seconds,
            shutdown_timeout=settings.shutdown_grace_seconds,
            sock=inherited_socket(),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
