"""``python -m services.integration``: the integration process."""

from __future__ import annotations

import asyncio
import logging
import sys

from aicollect import logs
from aicollect.crypto import KeyConfigError, parse_keys
from aicollect.db.engine import make_engine, make_sessionmaker
from aicollect.rpc.client import internal_channel
from aicollect.rpc.server import wait_for_signal
from aicollect.settings import INTEGRATION_REQUIRES, MissingSettingError, Settings
from services.integration.server import build_server

log = logging.getLogger("services.integration")


async def serve(settings: Settings) -> None:
    assert settings.database_url is not None
    assert settings.internal_token is not None
    token = settings.internal_token.get_secret_value()
    engine = make_engine(settings.database_url)
    matcher = internal_channel(settings.matcher_addr, token)
    try:
        server = build_server(
            make_sessionmaker(engine),
            matcher,
            address=settings.integration_addr,
            internal_token=token,
        )
        await server.start()
        log.info("integration serving", extra={"address": settings.integration_addr})
        await wait_for_signal()
        log.info("integration stopping", extra={"grace_s": settings.shutdown_grace_seconds})
        await server.stop(settings.shutdown_grace_seconds)
    finally:
        await matcher.close(None)
        await engine.dispose()
    log.info("integration stopped")


def main() -> int:
    settings = Settings.from_env()
    logs.configure("integration", level=settings.log_level, fmt=settings.log_format)
    try:
        settings.require(*INTEGRATION_REQUIRES)
        assert settings.token_keys is not None
        parse_keys(settings.token_keys.get_secret_value())
    except (MissingSettingError, KeyConfigError) as exc:
        print(f"integration: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
