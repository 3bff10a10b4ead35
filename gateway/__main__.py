"""``python -m gateway``: the public HTTP gateway."""

from __future__ import annotations

import sys

from aiohttp import web

from aicollect import logs
from aicollect.settings import GATEWAY_REQUIRES, MissingSettingError, Settings
from gateway.app import create_app


def main() -> int:
    settings = Settings.from_env()
    logs.configure("gateway", level=settings.log_level, fmt=settings.log_format)
    try:
        settings.require(*GATEWAY_REQUIRES)
    except MissingSettingError as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 2
    web.run_app(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        shutdown_timeout=settings.shutdown_grace_seconds,
        access_log=None,
        print=lambda msg: None,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
