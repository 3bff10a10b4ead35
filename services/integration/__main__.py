"""``python -m services.integration``: the integration process."""

from __future__ import annotations

import asyncio
import logging
import sys

import aiohttp

from aicollect import eventloop, logs
from aicollect.crypto import KeyConfigError, parse_keys
from aicollect.db.engine import make_engine
from aicollect.handshake import report_ports
from aicollect.rpc.client import internal_channel
from aicollect.rpc.server import wait_for_signal
from aicollect.settings import INTEGRATION_REQUIRES, MissingSettingError, Settings
from services.integration.deps import IntegrationDeps
from services.integration.server import build_server
from services.integration.workers import start_workers, stop_workers

log = logging.getLogger("services.integration")
USER_AGENT = "ai-collect-integration/0.1"


async def serve(settings: Settings) -> None:
    assert settings.database_url is not None
    assert settings.internal_token is not None
    token = settings.internal_token.get_secret_value()
    engine = make_engine(settings.database_url)
    matcher = internal_channel(settings.matcher_addr, token)
    http = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})
    try:
        deps = IntegrationDeps.create(settings, engine, http, matcher)
        if settings.integration_metrics_port:
            deps.metrics.serve(settings.integration_metrics_port, settings.metrics_host)
        server = build_server(deps, address=settings.integration_addr, internal_token=token)
        await server.start()
        report_ports(grpc=server.port)
        stop = asyncio.Event()
        workers = start_workers(deps, stop)
        log.info(
            "integration serving",
            extra={"address": settings.integration_addr, "port": server.port},
        )
        await wait_for_signal()
        log.info("integration stopping", extra={"grace_s": settings.shutdown_grace_seconds})
        await server.stop(settings.shutdown_grace_seconds)
        await stop_workers(workers, stop, settings.shutdown_grace_seconds)
        for budget in (*deps.budgets.values(), *deps.app_budgets.values()):
            await budget.close()
        await deps.inbox_writer.close()
    finally:
        await http.close()
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
    eventloop.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
