"""A real crash: the integration process is SIGKILLed mid-backfill and started again; the new
process picks the backfill up from its checkpoint (its advisory lock died with the old
connection) and finishes it without a duplicate placement."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from emulators.qbo.config import CompanySpec
from services.integration.deps import IntegrationDeps
from services.integration.sync import state
from tests.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    INTERNAL_TOKEN,
    REALM_ID,
    REDIRECT_URI,
    TOKEN_KEYS,
    VERIFIER_TOKEN,
    Emulator,
)
from tests.services.integration.sync.conftest import (
    TODAY,
    Control,
    assert_matches_books,
    eventually,
    overdue_in_books,
    placements,
    sync_row,
)

INVOICES = 10_000


@pytest.fixture
def company() -> CompanySpec:
    return CompanySpec(
        realm_id=REALM_ID, customers=400, invoices=INVOICES, today=TODAY, seed=11, name="Big"
    )


@pytest_asyncio.fixture
async def integration_process(
    database_url: str, emulator: Emulator, matcher_addr: str, tmp_path: Path
) -> AsyncIterator[Callable[[], asyncio.Future[asyncio.subprocess.Process]]]:
    """Starts ``python -m services.integration`` (its sync scheduler included) on demand."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AICOLLECT_", "QBO_"))},
        "AICOLLECT_DATABASE_URL": database_url,
        "AICOLLECT_INTERNAL_TOKEN": INTERNAL_TOKEN,
        "AICOLLECT_TOKEN_KEYS": TOKEN_KEYS,
        "AICOLLECT_MATCHER_ADDR": matcher_addr,
        "AICOLLECT_INTEGRATION_METRICS_PORT": "0",
        "AICOLLECT_SYNC_TICK_SECONDS": "0.1",
        "AICOLLECT_BACKFILL_RETRY_SECONDS": "1",
        "AICOLLECT_CDC_INTERVAL_SECONDS": "3600",
        "AICOLLECT_LOG_FORMAT": "text",
        "QBO_CLIENT_ID": CLIENT_ID,
        "QBO_CLIENT_SECRET": CLIENT_SECRET,
        "QBO_REDIRECT_URI": REDIRECT_URI,
        "QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER_TOKEN,
        "QBO_DISCOVERY_URL": f"{emulator.url}/.well-known/openid_configuration",
        "QBO_API_BASE_URL": emulator.url,
    }
    started: list[asyncio.subprocess.Process] = []
    log = (tmp_path / "integration.log").open("ab")

    def spawn() -> asyncio.Future[asyncio.subprocess.Process]:
        env["AICOLLECT_INTEGRATION_ADDR"] = "127.0.0.1:0"  # any free port, chosen at bind

        async def go() -> asyncio.subprocess.Process:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "services.integration", env=env, stdout=log, stderr=log
            )
            started.append(proc)
            return proc

        return asyncio.ensure_future(go())

    try:
        yield spawn
    finally:
        for proc in started:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 15)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        log.close()


async def test_a_killed_process_resumes_from_the_checkpoint_in_a_new_process(
    connected: grpc.aio.Channel,
    deps: IntegrationDeps,
    emulator: Emulator,
    control: Control,
    integration_process: Callable[[], asyncio.Future[asyncio.subprocess.Process]],
) -> None:
    await control("PUT", "/faults", {"latency_ms": 120})  # slow enough to be caught mid-way
    first = await integration_process()

    async def mid_way() -> bool:
        return (await sync_row(deps)).backfill_next_position > 1

    await eventually(mid_way, within=60, every=0.02)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    crashed = await sync_row(deps)
    assert crashed.backfill_phase == state.RUNNING
    assert crashed.backfill_next_position < len(overdue_in_books(emulator))
    placed_before = await placements(deps)
    assert placed_before

    await control("DELETE", "/faults")
    await integration_process()

    async def completed() -> bool:
        return (await sync_row(deps)).backfill_phase == state.COMPLETED

    await eventually(completed, within=60)
    final = await sync_row(deps)
    got = await placements(deps)  # asserts one placement per invoice
    assert_matches_books(emulator, got, invoices=INVOICES)
    assert final.backfill_invoices_seen == len(got)
    assert final.backfill_placements_created == len(got)
    for invoice_id, placement in placed_before.items():
        assert got[invoice_id].placement_id == placement.placement_id
