"""Checks on a running multi-process stack (aicollect/localstack.py), shared by the process
fault tests: waiting for a condition, the webhook inbox's rows, and what the emulator (as
Intuit) saw of its webhook deliveries."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
from sqlalchemy.engine import make_url

from aicollect.localstack import LocalStack


async def wait_for(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


async def inbox_rows(stack: LocalStack) -> list[dict[str, Any]]:
    """Every row of the webhook inbox: event id, status, attempts."""
    dsn = make_url(stack.database_url).set(drivername="postgresql").render_as_string(False)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT event_id, status, attempts FROM integration.webhook_inbox")
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def _deliveries(stack: LocalStack) -> list[dict[str, Any]]:
    assert stack.emulator_url is not None
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{stack.emulator_url}/_emulator/deliveries", params={"since": "0"}) as resp,
    ):
        log = await resp.json()
    attempts: list[dict[str, Any]] = log["deliveries"]
    return attempts


async def delivered_event_ids(stack: LocalStack) -> set[str]:
    """Events Intuit (the emulator) saw acknowledged with a 200."""
    acked: set[str] = set()
    for attempt in await _deliveries(stack):
        if attempt["ok"]:
            acked.update(attempt["event_ids"])
    return acked


async def failed_attempts(stack: LocalStack) -> int:
    """Webhook deliveries the emulator saw fail (and retried)."""
    return sum(1 for attempt in await _deliveries(stack) if not attempt["ok"])
