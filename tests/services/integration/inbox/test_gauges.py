"""The integration process's gauges, which the alert rules in deploy/prometheus read: inbox
depth and dead letters, and connections by state (a creditor who must re-authorize)."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import generate_latest
from sqlalchemy import insert

from services.integration.models import Connection
from services.integration.webhook_worker import inbox_gauges


async def test_connections_by_state_are_counted(integration_deps: Any) -> None:
    async with integration_deps.sessions.begin() as session:
        await session.execute(
            insert(Connection),
            [
                {"tenant_id": "acme", "realm_id": "1", "state": "connected"},
                {"tenant_id": "globex", "realm_id": "2", "state": "needs_reauthorization"},
                {"tenant_id": "initech", "realm_id": "3", "state": "connected"},
            ],
        )
    stop = asyncio.Event()
    task = asyncio.create_task(
        inbox_gauges(integration_deps.sessions, integration_deps.metrics, stop)
    )
    try:
        for _ in range(100):
            text = generate_latest(integration_deps.metrics.registry).decode()
            if 'aicollect_connections{state="connected"} 2.0' in text:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert 'aicollect_connections{state="connected"} 2.0' in text
    assert 'aicollect_connections{state="needs_reauthorization"} 1.0' in text
    assert 'aicollect_connections{state="disconnected"} 0.0' in text
    assert "aicollect_inbox_depth 0.0" in text
