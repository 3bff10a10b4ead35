"""``aicollect run`` in the foreground: starts the local stack (``aicollect/localstack.py``),
prints every address, waits for SIGINT/SIGTERM or a child that exits, and stops everything;
the exit code is 0 when everything stopped cleanly.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aicollect import logs
from aicollect.children import first_exit
from aicollect.db.embedded import EmbeddedPostgres
from aicollect.local_secrets import DASHBOARD_LINK_FILE, DASHBOARD_PATH, LOCAL_TENANT
from aicollect.localstack import LocalStack
from aicollect.rpc.server import wait_for_signal
from aicollect.settings import Settings

log = logging.getLogger("aicollect.run")


async def run_local_stack(settings: Settings, *, seed_demo: bool = True, replicas: int = 1) -> int:
    logs.configure("run", level=settings.log_level, fmt="text")
    stack = LocalStack(settings, seed_demo=seed_demo, replicas=replicas)
    exit_code = 0
    started = False
    try:
        started = await stack.start()
        if not started:
            return 1
        _print_banner(
            settings,
            stack.env,
            stack.gateway_url,
            stack.emulator_url,
            stack.postgres,
            stack.data_dir,
        )
        signalled = asyncio.ensure_future(wait_for_signal())
        crashed = asyncio.ensure_future(first_exit(list(stack.children.values())))
        done, _ = await asyncio.wait({signalled, crashed}, return_when=asyncio.FIRST_COMPLETED)
        if crashed in done:
            child = crashed.result()
            log.error(
                "%s exited unexpectedly (code %s); stopping",
                child.name,
                child.proc.returncode if child.proc else None,
            )
            exit_code = 1
            signalled.cancel()
        else:
            crashed.cancel()
            log.info("stopping")
    finally:
        if started:
            exit_code = await stack.stop() or exit_code
    if exit_code == 0:
        log.info("stopped cleanly")
    return exit_code


def _print_banner(
    settings: Settings,
    env: dict[str, str],
    gateway_url: str,
    emulator_url: str | None,
    postgres: EmbeddedPostgres | None,
    data_dir: Path,
) -> None:
    integration = env.get("AICOLLECT_INTEGRATION_ADDR", settings.integration_addr)
    matcher = env.get("AICOLLECT_MATCHER_ADDR", settings.matcher_addr)
    rows = [
        ("gateway", f"{gateway_url}  (/healthz /readyz /metrics, /v1/...)"),
        ("integration", f"{integration}  (gRPC; reflection + health)"),
        ("matcher", f"{matcher}  (gRPC; reflection + health)"),
    ]
    if emulator_url:
        rows.append(("emulator", f"{emulator_url}  (Intuit OAuth 2.0 + QBO API v3; /_emulator/)"))
    xero = env.get("XERO_API_BASE_URL")
    if xero and settings.uses_xero_emulator:
        rows.append(("xero", f"{xero}  (Xero OAuth 2.0 + Accounting API; /_emulator/)"))
    if postgres is not None:
        rows.append(
            (
                "postgres",
                f"postgresql://postgres@127.0.0.1:{postgres.port}/postgres  (embedded)",
            )
        )
    rows.append(("secrets", f"{data_dir / 'local.env'}  (source it for grpcurl, see README)"))
    if (data_dir / DASHBOARD_LINK_FILE).exists():
        rows.append(
            (
                "dashboard",
                f"{gateway_url}{DASHBOARD_PATH}  (reference page; open the link in "
                f"{data_dir / DASHBOARD_LINK_FILE}: it carries a token for tenant "
                f"'{LOCAL_TENANT}')",
            )
        )
    lines = ["", "ai-collect local stack is up"]
    lines += [f"  {name:<12} {value}" for name, value in rows]
    lines += ["Ctrl-C or SIGTERM stops everything.", ""]
    print("\n".join(lines), flush=True)
